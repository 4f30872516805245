"""The shipped presets: load offline, predict EMO-DB, carry their LOSO figures; `keras-ser predict --preset`."""

import glob
import json
import os

import numpy as np
import pytest

import keras_ser
import tf_pipeline
from keras_ser import presets

# The GE2E probe, and the fusion of GE2E and the sound-effects CNN (the best honest system, UA >= 85).
PRESETS = {"encoder_stats_emodb": 82.0, "fusion_stats_emodb": 85.0}
each_preset = pytest.mark.parametrize("PRESET", sorted(PRESETS))


@each_preset
def test_list_presets_and_metadata(PRESET):
    assert PRESET in keras_ser.list_presets()
    metadata = presets.preset_metadata(PRESET)
    loso = metadata["loso"]
    assert sorted(loso["folds"]) == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    assert loso["uses_test_speaker_audio"] is False
    # The pooled UA is the mean per-class recall of the per-fold figures' utterances: at least its goal.
    assert PRESETS[PRESET] <= loso["ua_pooled"] <= 100.0
    assert min(f["ua"] for f in loso["per_fold"]) <= loso["ua_pooled"] <= max(f["ua"] for f in loso["per_fold"])
    assert "reproduce.py --table=speech" in loso["command"] or "keras-ser loso" in loso["command"]
    assert metadata["trained_on"]["utterances"] == 535
    # What the repository stores for it is small: the head only.
    folder = os.path.join(presets.PRESETS_DIR, PRESET)
    assert sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) < 2 * 2**20
    with pytest.raises(ValueError, match=r"Unknown preset. Expected one of \['encoder_stats_emodb', 'fusion_stats_emodb'\]"):
        keras_ser.from_preset("nope")


@each_preset
def test_preset_predicts_emodb(emodb_dir, PRESET):
    model = keras_ser.from_preset(PRESET)
    assert model.class_names == ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
    corpus = tf_pipeline.corpora.emodb(emodb_dir)
    # Every 9th utterance (60, all speakers): the preset was trained on all of them, so a model whose
    # head was not loaded (chance: 14%) or loaded into the wrong layers fails this.
    indices = np.arange(0, len(corpus), 9)
    waveforms = [np.asarray(tf_pipeline.load_audio(corpus.records[i].path, model.feature_config)) for i in indices]
    batch = np.zeros((len(waveforms), max(len(w) for w in waveforms)), np.float32)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    inputs = model.preprocessor.batch(batch, [len(w) for w in waveforms])
    predicted = model.predict(inputs, verbose=0).argmax(1)
    assert np.mean(predicted == corpus.labels[indices]) > 0.9


@each_preset
def test_predict_cli_with_preset(emodb_dir, tmp_path, capsys, PRESET):
    from keras_ser_cli.main import run

    files = sorted(glob.glob(os.path.join(emodb_dir, "03a01W*.wav")))[:1] + [str(tmp_path / "missing.wav")]
    assert run(["keras-ser", "predict", f"--preset={PRESET}", "--json", *files]) == 1  # one file failed
    results = json.loads(capsys.readouterr().out)
    assert results[0]["label"] == "anger" and abs(sum(results[0]["probabilities"].values()) - 1) < 1e-5
    assert "missing.wav" in results[1]["file"] and "error" in results[1]
    assert run(["keras-ser", "predict", "--preset=nope", files[0]]) == 2
    assert "unknown --preset 'nope'" in capsys.readouterr().err


@each_preset
def test_export_cli_with_preset(tmp_path, capsys, PRESET):
    import tensorflow as tf

    from keras_ser_cli.main import run

    assert run(["keras-ser", "export", f"--preset={PRESET}", f"--export_root={tmp_path}", "--name=ser"]) == 0
    assert f"exported preset {PRESET} to" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(tmp_path / "ser" / "1"))
    assert set(loaded.signatures) >= {"serving_default", "serve_wav"}
    assert run(["keras-ser", "export", f"--preset={PRESET}", "--model=m.keras", f"--export_root={tmp_path}"]) == 2
    assert "give exactly one of --model=M.keras or --preset=NAME" in capsys.readouterr().err
