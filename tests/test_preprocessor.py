"""The preprocessor: one statement of which model takes what, used by training, prediction and serving."""

import os

import numpy as np
import pytest

import keras
import keras_ser
import tf_pipeline
from keras_ser.models.preprocessor import Preprocessor
from keras_ser.training.config import TrainConfig

TINY_CNN = {"image_size": 67, "sru_units": 8, "backbone_kwargs": {"filters": (8, 8, 8, 8, 8), "fc_units": 16}}
ENTRIES = {
    "cnn_sru": dict(name="cnn_sru", n_segments=2, **TINY_CNN),
    "cnn": dict(name="cnn", **{k: v for k, v in TINY_CNN.items() if k != "sru_units"}),
    "sru": dict(name="sru", sru_units=8),
    "encoder_stats": dict(name="encoder_stats"),
    "encoder_sru": dict(name="encoder_sru", n_segments=2, sru_units=8),
    "sfx_stats": dict(name="sfx_stats", backbone_weights="random", backbone_kwargs={"filters": 4}),
    "fusion_stats": dict(name="fusion_stats", backbone_weights="random", backbone_kwargs={
        "speaker_encoder": {"units": 8, "embedding_dim": 4}, "sound_effects_encoder": {"filters": 4}}),
}
LAYOUT = {"cnn_sru": "segments", "cnn": "segments", "sru": "frames", "encoder_stats": "mel_frames",
          "encoder_sru": "mel_frames", "sfx_stats": "sfx_mel", "fusion_stats": "fusion"}
RECIPE = {"encoder_stats": "probe", "sfx_stats": "probe", "fusion_stats": "probe", "encoder_sru": "frozen"}


def _parts(inputs):
    """The model input as `{name: numpy array}` (one entry for single-input models)."""
    if isinstance(inputs, dict):
        return {name: np.asarray(value) for name, value in inputs.items()}
    return {"input": np.asarray(inputs)}


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_path_gets_the_same_input(name, synthetic_corpus, tmp_path):
    model = keras_ser.build_model(num_classes=synthetic_corpus.num_classes, compile=False, **ENTRIES[name])
    preprocessor = model.preprocessor
    assert preprocessor.layout == LAYOUT[name]
    # The model's preprocessor is the one its TrainConfig describes, and survives saving.
    spec = {k: v for k, v in ENTRIES[name].items() if k not in ("name", "backbone_kwargs")}
    config = TrainConfig(model=name, recipe=RECIPE.get(name, "end_to_end"), **spec)
    assert config.preprocessor(model.feature_config) == preprocessor
    path = str(tmp_path / "m.keras")
    model.save(path)
    assert keras.saving.load_model(path, compile=False).preprocessor == preprocessor
    assert Preprocessor.from_config(preprocessor.get_config()) == preprocessor
    # The training dataset (corpus order), one-at-a-time prediction input and the padded
    # batch of the serving graph agree.
    indices = [0, 5]
    inputs, _ = next(iter(preprocessor.dataset(synthetic_corpus, indices, batch_size=2)))
    waves = [np.asarray(tf_pipeline.load_audio(synthetic_corpus.records[i].path)) for i in indices]
    batch = np.zeros((2, max(len(w) for w in waves)), np.float32)
    for row, w in enumerate(waves):
        batch[row, : len(w)] = w
    served = preprocessor.batch(batch, [len(w) for w in waves])
    for row, w in enumerate(waves):
        alone = _parts(preprocessor(w))
        for part, dataset_part, served_part in zip(alone, _parts(inputs).values(), _parts(served).values()):
            frames = alone[part].shape[1]
            np.testing.assert_allclose(dataset_part[row][: frames], alone[part][0], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(served_part[row][: frames], alone[part][0], rtol=1e-4, atol=1e-4)
    assert model.predict(served, verbose=0).shape == (2, synthetic_corpus.num_classes)


def test_preprocessor_errors():
    with pytest.raises(ValueError, match=r"layout must be one of \('segments', 'frames', 'mel_frames', 'sfx_mel', 'fusion'\)"):
        Preprocessor.from_layout("images")
    with pytest.raises(ValueError, match="A 'frames' preprocessor cuts no segments. Received: n_segments=3"):
        Preprocessor.from_layout("frames", n_segments=3)
    with pytest.raises(ValueError, match="n_segments must be between 1 and 5. Received: n_segments=6"):
        Preprocessor.from_layout("segments", n_segments=6)
    with pytest.raises(ValueError, match="feature_config must be a keras_ser.models.speech_encoders.config.MelFramesConfig, its dict, or None"):
        Preprocessor.from_layout("mel_frames", tf_pipeline.FeatureConfig())
    with pytest.raises(ValueError, match="mel_frames input has no augmentation"):
        Preprocessor.from_layout("mel_frames").dataset(None, mixup_alpha=0.2)
    with pytest.raises(ValueError, match="waveform must be a mono signal"):
        Preprocessor.from_layout("frames")(np.zeros((2, 16000), np.float32))
