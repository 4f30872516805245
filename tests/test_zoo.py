"""The zoo: build_model, shapes and parameter counts, metadata, save/load, fit, channel statistics."""

import doctest
import importlib
import re

import numpy as np
import pytest

import keras
import keras_ser
from keras_ser import CNNClassifier
from keras_ser import CNNSRUClassifier
from keras_ser import SRUClassifier
from keras_ser.layers import ChannelStandardization
from keras_ser.metrics import UnweightedAccuracy
from tf_pipeline.config import FeatureConfig

TINY_BACKBONE = {"filters": (8, 8, 8, 8, 8), "fc_units": 16}
EMOTIONS = ["anger", "boredom", "neutral", "sadness"]


def tiny_model(name, **kwargs):
    """A zoo model small enough to train in a test (67x67 segments, 8 filters, 16 units)."""
    arguments = {"num_classes": 4, "class_names": EMOTIONS, "sru_units": 16}
    if name != "sru":
        arguments.update(image_size=67, backbone_kwargs=TINY_BACKBONE)
    if name == "cnn_sru":
        arguments["n_segments"] = 2
    arguments.update(kwargs)
    return keras_ser.build_model(name, **arguments)


def model_inputs(model, batch, seed=0):
    """Raw (unstandardised) inputs for `model`; frames are zero-padded to different lengths."""
    rng = np.random.default_rng(seed)
    if isinstance(model, SRUClassifier):
        width = model.input.shape[-1]
        frames = (rng.normal(size=(batch, 12, width)) * 2.0 - 5.0).astype("float32")
        for i in range(batch):
            frames[i, 6 + i % 6:] = 0.0
        return frames
    shape = tuple(model.input.shape[1:])
    return (rng.normal(size=(batch, *shape)) * 2.0 - 5.0).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_list_models():
    models = keras_ser.list_models()
    assert list(models) == ["cnn_sru", "cnn", "sru", "encoder_stats", "encoder_sru", "sfx_stats", "fusion_stats"]
    assert all(isinstance(line, str) and "\n" not in line for line in models.values())


# -- shapes and parameter counts -------------------------------------------------------------------

@pytest.mark.parametrize(
    "name,cls,input_shape,layer_names,params",
    [
        # AlexNet (8 filters, 16 units, pool5 1x1): 2912 + 808 + 584 + 296 + 296 + 144 + 272 = 5312;
        # standardize 3 + 3 (not trainable); SRU 16 -> 16: 16 * 48 + 32 = 800; softmax 16 * 4 + 4 = 68.
        ("cnn_sru", CNNSRUClassifier, (None, 2, 67, 67, 3),
         ["segments", "standardize", "backbone", "sru", "predictions"], 5312 + 6 + 800 + 68),
        ("cnn", CNNClassifier, (None, 1, 67, 67, 3),
         ["segments", "standardize", "backbone", "squeeze", "predictions"], 5312 + 6 + 68),
        # SRU 180 -> 16 has a highway projection: 180 * 64 + 32 = 11552.
        ("sru", SRUClassifier, (None, None, 180),
         ["frames", "mask", "standardize", "sru", "dropout", "predictions"], 11552 + 6 + 68),
    ],
)
def test_tiny_shapes_layers_and_parameter_counts(name, cls, input_shape, layer_names, params):
    model = tiny_model(name, compile=False)
    assert isinstance(model, cls) and model.name == name
    assert model.input.shape == input_shape
    assert model.output.shape == (None, 4)
    assert [layer.name for layer in model.layers] == layer_names
    assert model.count_params() == params
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 6
    out = _numpy(model(model_inputs(model, 3), training=False))
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "name,kwargs,params",
    [
        # AlexNet 56,868,224 + SRU 4096 * 3 * 4096 + 2 * 4096 = 50,339,840 + softmax 28,679 (+ 6).
        ("cnn_sru", {}, 107_236_749),
        # Ungrouped conv2/4/5 (+1,413,120): the 108.6 M of docs/design.md, Reference calibration.
        ("cnn_sru", {"backbone_kwargs": {"groups": 1}}, 108_649_869),
        ("cnn", {}, 56_896_909),
        # SRU 180 -> 4096: 180 * 4 * 4096 + 2 * 4096 = 2,957,312.
        ("sru", {}, 2_985_997),
    ],
)
def test_full_size_parameter_counts(name, kwargs, params):
    model = keras_ser.build_model(name, compile=False, **kwargs)
    assert model.count_params() == params
    if name != "sru":
        assert model.input.shape[2:] == (227, 227, 3)
        assert model.backbone.output.shape == (None, 4096)
    if name == "cnn_sru":
        assert model.input.shape == (None, 3, 227, 227, 3)  # the paper's N = 3
        assert tuple(model.get_layer("sru").kernel.shape) == (4096, 3 * 4096)


def test_models_carry_their_metadata():
    model = tiny_model("cnn_sru", compile=False, class_names=None)
    assert model.class_names == ["class_0", "class_1", "class_2", "class_3"]
    assert model.feature_config == FeatureConfig()
    assert model.n_segments == 2 and model.num_classes == 4
    assert keras_ser.build_model("cnn_sru", image_size=67, sru_units=8, backbone_kwargs=TINY_BACKBONE,
                                 compile=False).n_segments == 3
    assert tiny_model("cnn", compile=False).n_segments == 1
    assert tiny_model("sru", compile=False).n_segments is None

    config = FeatureConfig(n_mels=40)
    model = tiny_model("sru", compile=False, feature_config=config.to_dict())
    assert model.feature_config == config
    assert model.input.shape == (None, None, 120)  # 40 log-Mel + 40 delta + 40 delta-delta
    assert model.class_names == EMOTIONS
    model.class_names.append("changed")  # a copy: the model's names cannot be edited by accident
    assert model.class_names == EMOTIONS


def test_compile_defaults():
    model = tiny_model("sru")
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    x = model_inputs(model, 4)
    results = model.evaluate(x, np.arange(4), verbose=0, return_dict=True)
    assert set(results) == {"loss", "wa", "ua"}
    # Explicit arguments win over the defaults.
    model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=[UnweightedAccuracy(4, name="uar")])
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert set(model.evaluate(x, np.arange(4), verbose=0, return_dict=True)) == {"loss", "uar"}


@pytest.mark.parametrize("name", ["cnn_sru", "sru"])
def test_mixed_precision_keeps_standardisation_and_head_in_float32(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model(name, compile=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("sru").compute_dtype == "bfloat16"
    assert model.get_layer("standardize").compute_dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    out = model(model_inputs(model, 2), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(_numpy(out).sum(axis=-1), 1.0, atol=1e-3)


# -- save / load ------------------------------------------------------------------------------------

# The models were compiled but never trained, so the saved optimizer has no slot variables yet.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("name", ["cnn_sru", "cnn", "sru"])
def test_keras_save_and_load_round_trip(name, tmp_path):
    model = tiny_model(name, feature_config=FeatureConfig(n_mels=60, fmax=7600.0))
    keras_ser.set_channel_stats(model, [-5.0, 0.1, 0.0], [2.0, 0.5, 0.25])
    x = model_inputs(model, 3, seed=1)
    expected = _numpy(model(x, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    np.testing.assert_array_equal(_numpy(restored(x, training=False)), expected)
    assert restored.class_names == EMOTIONS
    assert restored.feature_config == FeatureConfig(n_mels=60, fmax=7600.0)
    assert restored.n_segments == model.n_segments
    mean, std = keras_ser.get_channel_stats(restored)
    np.testing.assert_allclose(mean, [-5.0, 0.1, 0.0])
    np.testing.assert_allclose(std, [2.0, 0.5, 0.25], rtol=1e-6)
    # Compiled as saved: same optimizer and the WA / UA metrics.
    assert restored.compiled and isinstance(restored.optimizer, keras.optimizers.Adam)
    results = restored.evaluate(x, np.arange(3), verbose=0, return_dict=True)
    assert set(results) == {"loss", "wa", "ua"}
    assert restored.get_config() == model.get_config()


# -- training ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn_sru", "cnn", "sru"])
def test_a_few_fit_steps_lower_the_loss(name):
    # Ungrouped convolutions: TensorFlow runs grouped ones through XLA, which costs ~10 s of
    # compilation per model on these CPUs. Grouped training runs in test_backends (JAX).
    kwargs = {} if name == "sru" else {"backbone_kwargs": {**TINY_BACKBONE, "groups": 1}}
    model = tiny_model(name, dropout=0.0, compile=False, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = model_inputs(model, 8, seed=2)
    keras_ser.set_channel_stats(model, [-5.0, -5.0, -5.0], [2.0, 2.0, 2.0])
    y = np.arange(8) % 4
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0).history
    assert set(history) == {"loss", "wa", "ua"}
    assert history["loss"][-1] < history["loss"][0]
    assert np.isfinite(history["loss"]).all()


# -- channel statistics -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn_sru", "cnn", "sru"])
def test_set_channel_stats_standardises_inside_the_model(name):
    model = tiny_model(name, compile=False)
    x = model_inputs(model, 2, seed=3)
    mean, std = np.array([-5.0, 0.5, 1.0]), np.array([2.0, 0.5, 4.0])
    if name == "sru":
        # One statistic per block of n_mels values: [log-Mel | delta | delta-delta].
        per_feature = lambda v: np.repeat(v, model.feature_config.n_mels)  # noqa: E731
        padded = ~np.any(x != 0, axis=-1, keepdims=True)
        standardised = np.where(padded, 0.0, (x - per_feature(mean)) / per_feature(std)).astype("float32")
    else:
        standardised = ((x - mean) / std).astype("float32")
    reference = _numpy(model(standardised, training=False))  # identity statistics
    keras_ser.set_channel_stats(model, mean, std)
    np.testing.assert_allclose(_numpy(model(x, training=False)), reference, atol=1e-5)
    got_mean, got_std = keras_ser.get_channel_stats(model)
    np.testing.assert_allclose(got_mean, mean)
    np.testing.assert_allclose(got_std, std, rtol=1e-6)


def test_set_channel_stats_accepts_a_stats_object_and_rejects_bad_values():
    model = tiny_model("cnn", compile=False)

    class Stats:
        mean = np.array([1.0, 2.0, 3.0])
        std = np.array([1.0, 1.0, 2.0])

    keras_ser.set_channel_stats(model, Stats())
    np.testing.assert_allclose(keras_ser.get_channel_stats(model)[1], [1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape("mean must have shape (3,) (one value per channel). "
                                                   "Received: mean of shape (4,)")):
        keras_ser.set_channel_stats(model, [0.0] * 4, [1.0] * 3)
    with pytest.raises(ValueError, match=re.escape("std must be positive. Received: std=[1.0, 0.0, 1.0]")):
        keras_ser.set_channel_stats(model, [0.0] * 3, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="mean must be finite"):
        keras_ser.set_channel_stats(model, [0.0, np.nan, 0.0], [1.0] * 3)
    with pytest.raises(ValueError, match="Pass `mean` and `std`"):
        keras_ser.set_channel_stats(model, [0.0] * 3)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match="named 'standardize'.*Received: model 'plain'"):
        keras_ser.set_channel_stats(plain, [0.0] * 3, [1.0] * 3)
    # Nothing changed by the failed calls.
    np.testing.assert_allclose(keras_ser.get_channel_stats(model)[0], [1.0, 2.0, 3.0])


def test_channel_standardization_layer():
    layer = ChannelStandardization(features_per_channel=2, name="standardize")
    x = np.arange(12, dtype="float32").reshape(2, 6)
    _ = layer(x)
    assert tuple(layer.mean.shape) == (3,) and not layer.trainable_weights
    layer.mean.assign([1.0, 2.0, 3.0])
    layer.variance.assign([4.0, 1.0, 0.25])
    expected = (x - np.repeat([1.0, 2.0, 3.0], 2)) / np.repeat([2.0, 1.0, 0.5], 2)
    np.testing.assert_allclose(_numpy(layer(x)), expected, rtol=1e-6)
    assert ChannelStandardization.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="known multiple of features_per_channel=4"):
        ChannelStandardization(features_per_channel=4)(x)
    with pytest.raises(ValueError, match="features_per_channel must be a positive integer. Received: features_per_channel=0"):
        ChannelStandardization(features_per_channel=0)


# -- arguments checked at the door -------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_segments": 7}, "n_segments must be between 1 and 5. Received: n_segments=7"),
        ({"n_segments": 0}, "n_segments must be between 1 and 5. Received: n_segments=0"),
        ({"n_segments": 2.0}, "n_segments must be between 1 and 5. Received: n_segments=2.0"),
        ({"name": "lstm"}, "Unknown model. Expected one of ['cnn_sru', 'cnn', 'sru', 'encoder_stats', 'encoder_sru', 'sfx_stats', 'fusion_stats']. Received: name='lstm'"),
        ({"num_classes": 1}, "num_classes must be an integer of at least 2. Received: num_classes=1"),
        ({"class_names": ["a", "b"]}, "class_names must have num_classes=7 entries. Received: 2 class names ['a', 'b']"),
        ({"num_classes": 2, "class_names": ["a", "a"]}, "class_names must be unique. Received: class_names=['a', 'a']"),
        ({"num_classes": 2, "class_names": "ab"}, "class_names must be a list of strings. Received: class_names='ab'"),
        ({"name": "cnn", "n_segments": 3}, "The 'cnn' model takes one segment (the whole utterance image). "
                                           "Received: n_segments=3"),
        ({"name": "sru", "n_segments": 3}, "leave n_segments=None. Received: n_segments=3"),
        ({"name": "sru", "backbone_weights": "x.npy"}, "The 'sru' model has no backbone. Received: backbone_weights='x.npy'"),
        ({"backbone": "resnet"}, "Unknown backbone. Expected one of ['alexnet', 'efficientnet_lite0']. "
                                 "Received: backbone='resnet'"),
        ({"backbone_variant": "vgg"}, "variant must be one of ('caffe', 'torchvision'). Received: variant='vgg'"),
        ({"dropout": 1.0}, "dropout must be a number in [0, 1). Received: dropout=1.0"),
        ({"sru_units": 0}, "sru_units must be an integer of at least 1. Received: sru_units=0"),
        ({"image_size": 32}, "image_size must be an integer of at least 67 for the caffe AlexNet. Received: image_size=32"),
        ({"backbone_kwargs": [8]}, "backbone_kwargs must be a dict or None. Received: backbone_kwargs=[8]"),
        ({"feature_config": 60}, "feature_config must be a tf_pipeline.config.FeatureConfig, its dict, or None. "
                                 "Received: feature_config=60"),
        ({"backbone_weights": "imagenet"}, "No AlexNet weights can be downloaded here"),
    ],
)
def test_bad_arguments_raise_value_error_saying_what_was_received(kwargs, message):
    arguments = {"image_size": 67, "sru_units": 8, "backbone_kwargs": TINY_BACKBONE, "compile": False, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        keras_ser.build_model(**arguments)


def test_task_classes_check_their_arguments_too():
    backbone = keras_ser.backbones.AlexNet(image_size=67, **TINY_BACKBONE)
    with pytest.raises(ValueError, match=re.escape("n_segments must be between 1 and 5. Received: n_segments=6")):
        CNNSRUClassifier(backbone, n_segments=6)
    with pytest.raises(ValueError, match=re.escape("class_names must have num_classes=3 entries")):
        CNNClassifier(backbone, num_classes=3, class_names=["a"])
    with pytest.raises(ValueError, match=re.escape("dropout must be a number in [0, 1). Received: dropout=-0.1")):
        SRUClassifier(dropout=-0.1)


# -- documentation examples run ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "module",
    [
        "keras_ser", "keras_ser.models", "keras_ser.models.registry", "keras_ser.models.task",
        "keras_ser.models.checks", "keras_ser.metrics", "keras_ser.layers.sru", "keras_ser.layers.lrn",
        "keras_ser.layers.standardization", "keras_ser.backbones", "keras_ser.weights", "keras_ser.weights.alexnet",
        # The CNN+SRU family: its backbones, front ends and tasks.
        "keras_ser.models.cnn_sru", "keras_ser.models.cnn_sru.alexnet", "keras_ser.models.cnn_sru.backbones",
        "keras_ser.models.cnn_sru.preprocessor", "keras_ser.models.cnn_sru.cnn_sru_classifier",
        "keras_ser.models.cnn_sru.cnn_classifier", "keras_ser.models.cnn_sru.sru_classifier",
        # The speech-encoder family: the speech backbone, its zoo entries, pooling, presets, the preprocessors
        # and their features.
        "keras_ser.models.speech_encoders", "keras_ser.models.speech_encoders.speaker_encoder",
        "keras_ser.weights.speaker_encoder", "keras_ser.models.speech_encoders.encoder_stats_classifier",
        "keras_ser.models.speech_encoders.encoder_sru_classifier", "keras_ser.models.speech_encoders.backbones",
        "keras_ser.layers.pooling", "keras_ser.presets", "keras_ser.models.preprocessor",
        "keras_ser.models.speech_encoders.preprocessor", "keras_ser.models.speech_encoders.mel_power",
        "tf_pipeline.config", "keras_ser.models.speech_encoders.config",
        # The second backbone, its input, the fused input and the speaker-subspace lever.
        "keras_ser.models.speech_encoders.sound_effects_encoder", "keras_ser.weights.sound_effects_encoder",
        "keras_ser.models.speech_encoders.sound_effects_stats_classifier",
        "keras_ser.models.speech_encoders.fusion_stats_classifier",
        "keras_ser.layers.speaker_projection", "keras_ser.training.frozen", "keras_ser.training.regressions",
        "keras_ser.models.speech_encoders.sound_effects_mel", "keras_ser.models.speech_encoders.fusion_inputs",
        "tf_pipeline.waveform_batches", "keras_ser.weights.assign",
        "keras_ser.rebuilt_model", "keras_ser.checksums",
        # The speech front end and cross-corpus scoring.
        "tf_pipeline.front_end", "keras_ser.training.cross_corpus", "keras_ser.training.channel_copies",
        # Shared mechanisms: atomic writes, waveform padding, signature names.
        "tf_pipeline.atomic", "tf_pipeline.padding", "saved_models.signatures", "keras_ser.adaptation",
        "keras_ser.training.report", "serving.errors",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
