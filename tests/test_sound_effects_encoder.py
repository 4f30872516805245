"""The aisfx sound-effects encoder: the Keras network against the package's torch network, its shipped weights.

Parity is checked against the `aisfx` package itself (its librosa Mel
spectrogram, its normalisation, its torch `EmbeddingNet` loaded from its
checkpoint) on real EMO-DB audio.
"""

import os

import numpy as np
import pytest

import keras
import keras_ser
from keras_ser.backbones import SoundEffectsEncoder
from keras_ser.checksums import file_sha256
from keras_ser.weights import sound_effects_encoder as encoder_weights

# Three speakers, three emotions, 1.6 s to 5.9 s (69 to 255 frames of 1024 samples at 44.1 kHz).
FILES = ["03a01Wa.wav", "08a02Ab.wav", "11b03Td.wav"]


@pytest.fixture(scope="module")
def aisfx():
    pytest.importorskip("torch")
    return pytest.importorskip("aisfx")


@pytest.fixture(scope="module")
def torch_network(aisfx):
    """The package's `EmbeddingNet('max', 3, 1, 64)` with the checkpoint's `embedding_net.*` weights, in eval mode."""
    from aisfx.models.cnn2d import EmbeddingNet

    state = encoder_weights.load_torch_checkpoint(encoder_weights.aisfx_checkpoint_path())
    network = EmbeddingNet("max", 3, 1, 64)
    network.load_state_dict({key[len("embedding_net."):]: value for key, value in state.items()
                             if key.startswith("embedding_net.")})
    return network.eval()


@pytest.fixture(scope="module")
def spectrograms(emodb_dir, aisfx):
    """The package's network input for each file, time first: `[time, 96]`."""
    from aisfx.preprocessing import spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    specs = []
    for name in FILES:
        spec = compute_spectrogram(os.path.join(emodb_dir, name), sr=44100.0, block_size=2048, hop_size=1024,
                                   n_mels=96, f_min=0.0, f_max=22050.0)
        # [96, time] as computed; the package's blocking() cuts it along the Mel axis (a bug), the
        # network's docstring asks for (batch, time_steps, freq_bins).
        specs.append(np.ascontiguousarray(spectrogram_normalize(spec).T, dtype=np.float32))
    return specs


def test_encoder_equals_the_torch_network_on_emodb(spectrograms, torch_network):
    import torch

    encoder = keras_ser.backbones.sound_effects_encoder("aisfx")
    worst = 0.0
    for name, spec in zip(FILES, spectrograms):
        assert spec.shape[1] == 96 and spec.shape[0] > 60
        outputs = encoder(spec[None])  # one utterance per call: no padding
        x = torch.from_numpy(spec[None])
        with torch.no_grad():
            h = x.unsqueeze(1)
            for k, pool in enumerate(((2, 2), (2, 2), (2, 2), (1, 1))):
                h = getattr(torch_network, f"conv_block{k + 1}")(h, pool_size=pool, pool_type="max")
                expected = h.mean(dim=3)[0].T.numpy()  # [time_k, channels]
                got = np.asarray(outputs[f"block_{k + 1}"])[0]
                assert got.shape == expected.shape == (len(spec) // encoder.time_strides[k], 64 * 2**k)
                worst = max(worst, float(np.abs(got - expected).max()))
                np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=f"{name} block_{k + 1}")
            embedding = torch_network(x)[0].numpy()
        # The block-by-block run is the package's forward pass.
        np.testing.assert_array_equal(embedding, h.mean(dim=3).max(dim=2)[0][0].numpy())
        np.testing.assert_allclose(np.asarray(outputs["embedding"])[0], embedding, atol=1e-4, rtol=0, err_msg=name)
        worst = max(worst, float(np.abs(np.asarray(outputs["embedding"])[0] - embedding).max()))
    print(f"max |keras - torch| over {len(FILES)} EMO-DB files, all outputs: {worst:.2e}")


def test_shipped_weights_are_the_package_checkpoint_converted(aisfx):
    path = encoder_weights.aisfx_checkpoint_path()
    assert file_sha256(path) == encoder_weights.AISFX_CHECKPOINT_SHA256
    converted = encoder_weights.convert_checkpoint()
    shipped, metadata = encoder_weights.read_converted(encoder_weights.SHIPPED)
    assert sorted(shipped) == sorted(converted) and len(converted) == 40
    for key in converted:
        assert shipped[key].dtype == np.float32, key
        np.testing.assert_array_equal(shipped[key], converted[key], err_msg=key)
    assert metadata == {"format": encoder_weights.FORMAT, "source": encoder_weights.AISFX_SOURCE}
    assert os.path.getsize(encoder_weights.SHIPPED) <= 20 * 10**6
    # The factory reads the package's .pth itself too, to the same weights.
    from_checkpoint = keras_ser.backbones.sound_effects_encoder(path)
    for variable in from_checkpoint.weights:
        layer = variable.path.split("/")[-2]
        np.testing.assert_array_equal(np.array(variable), shipped[f"{layer}/{variable.name}"], err_msg=variable.path)


def test_loading_weights_that_do_not_fit_changes_nothing(tmp_path):
    tiny = SoundEffectsEncoder(n_mels=16, filters=4)
    before = [np.array(v) for v in tiny.weights]
    arrays = {f"{layer.name}/{v.name}": np.array(v) for layer in tiny.layers for v in layer.weights}
    arrays["block_2_conv_1/kernel"] = np.zeros((3, 3, 4, 9), np.float32)
    del arrays["block_3_bn_2/moving_variance"]
    arrays["fc/kernel"] = np.zeros((2, 2), np.float32)
    path = str(tmp_path / "bad.npz")
    encoder_weights.save_converted(arrays, path)
    with pytest.raises(ValueError) as error:
        encoder_weights.load_sound_effects_encoder(tiny, path)
    message = str(error.value)
    assert f"weights from {path} do not fit this encoder" in message
    assert r"block_2_conv_1/kernel: shape (3, 3, 4, 9), expected (3, 3, 4, 8)" in message
    assert "block_3_bn_2/moving_variance: missing" in message
    assert "unexpected arrays ['fc/kernel']" in message
    # The pretrained weights do not fit a narrower encoder either: every layer is named.
    with pytest.raises(ValueError, match=r"block_1_conv_1/kernel: shape \(3, 3, 1, 64\), expected \(3, 3, 1, 4\)"):
        encoder_weights.load_sound_effects_encoder(tiny, "aisfx")
    for old, variable in zip(before, tiny.weights):
        np.testing.assert_array_equal(old, np.array(variable))
    # A file of another layout version is refused.
    np.savez(tmp_path / "old.npz", format=np.array("keras_ser.sound_effects_encoder/0"))
    with pytest.raises(ValueError, match="format 'keras_ser.sound_effects_encoder/0', expected"):
        encoder_weights.load_sound_effects_encoder(tiny, str(tmp_path / "old.npz"))
    with pytest.raises(FileNotFoundError, match="No sound-effects-encoder weights at 'missing.npz'"):
        encoder_weights.load_sound_effects_encoder(tiny, "missing.npz")
    with pytest.raises(ValueError, match="weights must be 'aisfx', a path"):
        encoder_weights.load_sound_effects_encoder(tiny, 3)


def test_weights_round_trip_through_save_converted(tmp_path):
    rng = np.random.default_rng(0)
    source = SoundEffectsEncoder(n_mels=16, filters=4)
    for variable in source.weights:
        variable.assign(rng.uniform(0.5, 1.5, size=variable.shape).astype("float32"))
    arrays = {f"{layer.name}/{v.name}": np.array(v) for layer in source.layers for v in layer.weights}
    path = str(tmp_path / "tiny.npz")
    encoder_weights.save_converted(arrays, path, source="a test")
    assert encoder_weights.read_converted(path)[1]["source"] == "a test"
    target = keras_ser.backbones.sound_effects_encoder(path, n_mels=16, filters=4)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_save_load_and_odd_lengths(tmp_path):
    keras.utils.set_random_seed(0)
    encoder = SoundEffectsEncoder(n_mels=16, filters=4, name="sfx")
    rng = np.random.default_rng(1)
    for layer in encoder.layers:  # non-trivial normalisation statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("float32") * 0.1)
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape).astype("float32"))
    x = rng.uniform(0, 1, size=(2, 37, 16)).astype("float32")
    expected = encoder.predict(x, verbose=0)
    assert {name: value.shape for name, value in expected.items()} == {
        "block_1": (2, 18, 4), "block_2": (2, 9, 8), "block_3": (2, 4, 16), "block_4": (2, 4, 32),
        "embedding": (2, 32)}
    np.testing.assert_allclose(expected["embedding"], expected["block_4"].max(axis=1), rtol=1e-6)
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SoundEffectsEncoder) and loaded.get_config() == encoder.get_config()
    got = loaded.predict(x, verbose=0)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)
    clone = SoundEffectsEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config() and clone.name == "sfx"
    assert clone.sequence_outputs == ("block_1", "block_2", "block_3", "block_4")
    assert clone.time_strides == (2, 4, 8, 8)
    # Odd lengths floor at each pooling, as torch's max-pool does; n_mels need not divide by 8.
    odd = SoundEffectsEncoder(n_mels=21, filters=2)(np.zeros((1, 15, 21), "float32"))
    assert [odd[name].shape[1] for name in clone.sequence_outputs] == [7, 3, 1, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_mels": 7}, "n_mels must be an integer of at least 8 (three 2x2 poolings). Received: n_mels=7"),
        ({"n_mels": 96.0}, "Received: n_mels=96.0"),
        ({"filters": 0}, "filters must be a positive integer. Received: filters=0"),
        ({"filters": True}, "Received: filters=True"),
    ],
    ids=["n_mels_small", "n_mels_float", "filters_zero", "filters_bool"],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        SoundEffectsEncoder(**kwargs)


@pytest.mark.parametrize("module", ["keras_ser.models.speech_encoders.sound_effects_encoder",
                                    "keras_ser.weights.sound_effects_encoder"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aisfx" else find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install --no-deps aisfx==0\.1\.2.*pip install torch"):
        encoder_weights.convert_checkpoint()
