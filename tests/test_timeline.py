"""keras_ser.predict_timeline and `keras-ser predict --timeline_dir`: windows over a long recording."""

import os

import numpy as np
import pytest

from conftest import wav_bytes

WINDOW_S, HOP_S = 2.0, 0.75


@pytest.fixture(scope="module")
def model():
    import keras_ser

    return keras_ser.from_preset("encoder_stats_emodb")


@pytest.fixture(scope="module")
def recording(emodb_dir):
    """About 15 s of real speech: 6 EMO-DB files one after another, quantised to 16 bits as the WAV stores it."""
    import tf_pipeline

    names = ["03a01Fa.wav", "03a01Nc.wav", "03a01Wa.wav", "03a02Fc.wav", "03a02Nc.wav", "03a02Ta.wav"]
    waveform = np.concatenate([tf_pipeline.load_audio(os.path.join(emodb_dir, n)) for n in names])
    return (np.clip(np.round(waveform * 32767), -32768, 32767) / 32768.0).astype(np.float32)


@pytest.fixture(scope="module")
def long_wav(recording, tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "long recording.wav"
    path.write_bytes(wav_bytes(recording * 32768.0 / 32767.0))
    return path


def test_windows_and_probabilities_match_each_window_alone(model, recording):
    from keras_ser import predict_timeline
    from keras_ser.inference import predictor

    timeline = predict_timeline(model, recording, WINDOW_S, HOP_S, batch_windows=3)
    window, hop = 32000, 12000
    expected = (len(recording) - window) // hop + 1
    assert len(timeline.starts) == expected == timeline.probabilities.shape[0] > 8
    np.testing.assert_allclose(timeline.starts, np.arange(expected) * 0.75)
    np.testing.assert_allclose(timeline.ends, timeline.starts + 2.0)
    assert timeline.ends[-1] <= len(recording) / 16000 < timeline.ends[-1] + HOP_S
    assert timeline.class_names == model.class_names
    assert timeline.probabilities.shape == (expected, len(model.class_names))
    predict = predictor(model)
    for i in range(expected):
        alone = np.asarray(predict(model.preprocessor(recording[i * hop : i * hop + window])))[0]
        np.testing.assert_allclose(timeline.probabilities[i], alone, atol=1e-5)
    summary = timeline.summary()
    assert summary["windows"] == expected and summary["top_label"] in model.class_names
    assert sum(summary["mean_probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_file_read_in_chunks_equals_the_whole_waveform(model, recording, long_wav, monkeypatch):
    from keras_ser import predict_timeline
    from keras_ser import timeline as timeline_module

    spans = []
    read = timeline_module._FileReader.read

    def recording_read(self, start, stop):
        samples = read(self, start, stop)
        spans.append(len(self._buffer))
        return samples

    monkeypatch.setattr(timeline_module._FileReader, "read", recording_read)
    for hop_s in (HOP_S, 2.5):  # overlapping windows, and gaps between windows
        whole = predict_timeline(model, recording, WINDOW_S, hop_s, batch_windows=4)
        chunked = predict_timeline(model, str(long_wav), WINDOW_S, hop_s, batch_windows=4)
        np.testing.assert_array_equal(chunked.starts, whole.starts)
        np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=1e-6)
        assert chunked.duration_s == pytest.approx(len(recording) / 16000)
        # Only one batch of windows is held: never the whole recording.
        assert max(spans) <= 3 * int(hop_s * 16000) + 32000 < len(recording)
        spans.clear()


def test_flac_is_read_in_chunks_by_soundfile(model, recording, tmp_path):
    soundfile = pytest.importorskip("soundfile")

    from keras_ser import predict_timeline

    path = tmp_path / "long.flac"
    soundfile.write(str(path), recording, 16000, subtype="PCM_16")
    whole = predict_timeline(model, recording, WINDOW_S, HOP_S)
    np.testing.assert_allclose(predict_timeline(model, path, WINDOW_S, HOP_S, batch_windows=5).probabilities,
                               whole.probabilities, atol=1e-6)


def test_other_rates_and_channels_are_resampled_per_window(model, recording, tmp_path):
    import scipy.signal

    from keras_ser import predict_timeline

    stereo = scipy.signal.resample_poly(recording, 441, 160)
    path = tmp_path / "stereo44k.wav"
    path.write_bytes(wav_bytes(np.stack([stereo, stereo], axis=1) * 0.9, rate=44100, channels=2))
    timeline = predict_timeline(model, path, WINDOW_S, HOP_S)
    reference = predict_timeline(model, recording * 0.9, WINDOW_S, HOP_S)
    assert len(timeline.starts) == len(reference.starts)
    np.testing.assert_allclose(timeline.probabilities.sum(axis=1), 1.0, atol=1e-5)
    agree = np.mean(np.argmax(timeline.probabilities, 1) == np.argmax(reference.probabilities, 1))
    assert agree >= 0.8


def test_silent_windows_get_nan_and_bad_arguments_are_refused(model, recording):
    from keras_ser import predict_timeline
    from keras_ser.timeline import TimelineError

    gap = np.concatenate([recording[:48000], np.zeros(64000, np.float32), recording[:48000]])
    timeline = predict_timeline(model, gap, WINDOW_S, 1.0)
    silent = np.isnan(timeline.probabilities).any(axis=1)
    assert silent.tolist() == [False, False, False, True, True, True, False, False, False]  # zeros at 3..7 s
    assert timeline.summary()["silent_windows"] == 3 and timeline.labels[3] is None
    with pytest.raises(TimelineError, match=r"waveform is too short for one window: 1\.000 s, the window is 2\.000 s"):
        predict_timeline(model, recording[:16000], WINDOW_S, HOP_S)
    with pytest.raises(ValueError, match="hop_s must be a positive"):
        predict_timeline(model, recording, WINDOW_S, 0)


def run_here(args, capsys):
    from keras_ser_cli.main import run

    capsys.readouterr()
    code = run(["keras-ser"] + args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_csv_and_png_and_reports_bad_files(model, recording, long_wav, tmp_path, capsys):
    from keras_ser import predict_timeline

    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(recording[:8000]))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all" * 10)
    out_dir = tmp_path / "timelines"
    code, out, err = run_here(["predict", "--preset=encoder_stats_emodb", f"--window_s={WINDOW_S}",
                               f"--hop_s={HOP_S}", f"--timeline_dir={out_dir}", str(short), str(broken),
                               str(long_wav), str(tmp_path / "missing.wav")], capsys)
    assert code == 1, err[-2000:]
    lines = out.strip().splitlines()
    assert len(lines) == 4, out
    assert lines[0].startswith(f"{short}: ERROR:") and "too short for one window: 0.500 s" in lines[0]
    assert lines[1].startswith(f"{broken}: ERROR:") and "not readable audio" in lines[1]
    assert lines[2].startswith("long recording.wav: ") and " windows, mostly " in lines[2]
    assert lines[3].startswith(str(tmp_path / "missing.wav")) and "ERROR" in lines[3]
    assert sorted(os.listdir(out_dir)) == ["long recording.csv", "long recording.png"]
    expected = predict_timeline(model, recording, WINDOW_S, HOP_S)
    rows = (out_dir / "long recording.csv").read_text().splitlines()
    assert rows[0] == "start_s,end_s," + ",".join(model.class_names)
    assert len(rows) == 1 + len(expected.starts)
    assert rows[2].startswith("0.750,2.750,")
    values = np.array([[float(v) for v in row.split(",")] for row in rows[1:]])
    np.testing.assert_allclose(values[:, 2:], expected.probabilities, atol=2e-6)
    assert (out_dir / "long recording.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_timeline_usage_errors(long_wav, tmp_path, capsys):
    code, _, err = run_here(["predict", "--server=localhost:8500", f"--timeline_dir={tmp_path}", str(long_wav)],
                            capsys)
    assert code == 2 and "--timeline_dir" in err and "not --server" in err
    code, _, err = run_here(["predict", "--preset=encoder_stats_emodb", "--hop_s=0", f"--timeline_dir={tmp_path}",
                             str(long_wav)], capsys)
    assert code == 2 and "--hop_s must be a positive" in err
