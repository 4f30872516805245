"""The shipped preset: loads offline, predicts EMO-DB, carries its LOSO figures; `keras-ser predict --preset`."""

import glob
import json
import os

import numpy as np
import pytest

import keras_ser
import tf_pipeline
from keras_ser import presets

PRESET = "encoder_stats_emodb"


def test_list_presets_and_metadata():
    assert PRESET in keras_ser.list_presets()
    metadata = presets.preset_metadata(PRESET)
    loso = metadata["loso"]
    assert sorted(loso["folds"]) == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    assert loso["uses_test_speaker_audio"] is False
    # The pooled UA is the mean per-class recall of the per-fold figures' utterances: at least the goal of 82.
    assert 82.0 <= loso["ua_pooled"] <= 100.0
    assert min(f["ua"] for f in loso["per_fold"]) <= loso["ua_pooled"] <= max(f["ua"] for f in loso["per_fold"])
    assert "reproduce.py --table=speech" in loso["command"] or "keras-ser loso" in loso["command"]
    assert metadata["trained_on"]["utterances"] == 535
    # What the repository stores for it is small: the head only.
    folder = os.path.join(presets.PRESETS_DIR, PRESET)
    assert sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) < 2 * 2**20
    with pytest.raises(ValueError, match=r"Unknown preset. Expected one of \['encoder_stats_emodb'\]"):
        keras_ser.from_preset("nope")


def test_preset_predicts_emodb(emodb_dir):
    model = keras_ser.from_preset(PRESET)
    assert model.class_names == ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
    corpus = tf_pipeline.corpora.emodb(emodb_dir)
    # Every 9th utterance (60, all speakers): the preset was trained on all of them, so a model whose
    # head was not loaded (chance: 14%) or loaded into the wrong layers fails this.
    indices = np.arange(0, len(corpus), 9)
    frames = [tf_pipeline.mel_frames(tf_pipeline.load_audio(corpus.records[i].path), model.feature_config).numpy()
              for i in indices]
    predicted = model.predict(tf_pipeline.pad_mel_frames(frames), verbose=0).argmax(1)
    assert np.mean(predicted == corpus.labels[indices]) > 0.9


def test_predict_cli_with_preset(emodb_dir, tmp_path, capsys):
    from keras_ser_cli.main import run

    files = sorted(glob.glob(os.path.join(emodb_dir, "03a01W*.wav")))[:1] + [str(tmp_path / "missing.wav")]
    assert run(["keras-ser", "predict", f"--preset={PRESET}", "--json", *files]) == 1  # one file failed
    results = json.loads(capsys.readouterr().out)
    assert results[0]["label"] == "anger" and abs(sum(results[0]["probabilities"].values()) - 1) < 1e-5
    assert "missing.wav" in results[1]["file"] and "error" in results[1]
    assert run(["keras-ser", "predict", "--preset=nope", files[0]]) == 2
    assert "unknown --preset 'nope'" in capsys.readouterr().err


def test_export_cli_with_preset(tmp_path, capsys):
    import tensorflow as tf

    from keras_ser_cli.main import run

    assert run(["keras-ser", "export", f"--preset={PRESET}", f"--export_root={tmp_path}", "--name=ser"]) == 0
    assert f"exported preset {PRESET} to" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(tmp_path / "ser" / "1"))
    assert set(loaded.signatures) >= {"serving_default", "serve_wav"}
    assert run(["keras-ser", "export", f"--preset={PRESET}", "--model=m.keras", f"--export_root={tmp_path}"]) == 2
    assert "give exactly one of --model=M.keras or --preset=NAME" in capsys.readouterr().err
