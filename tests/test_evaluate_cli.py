"""`keras-ser evaluate`: a model or preset scored on a labelled corpus over the emotions both share."""

import json

import numpy as np
import pytest

from conftest import tone
from conftest import wav_bytes
from test_cli import run_here

CLASSES = ["anger", "fear", "sadness", "neutral"]  # "fear": a class the corpus below does not have


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import keras_ser

    model = keras_ser.build_model(n_segments=2, num_classes=len(CLASSES), sru_units=8, image_size=67,
                                  class_names=CLASSES, backbone_kwargs={"filters": (4, 4, 4, 4, 4), "fc_units": 8})
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def corpus_csv(tmp_path_factory):
    """A CSV corpus: 3 speakers x anger, sadness, neutral, happiness (a class the model lacks) x 1 file, and one
    readable file too short to predict."""
    folder = tmp_path_factory.mktemp("corpus")
    rows = ["path,label,speaker"]
    for speaker in ("s1", "s2", "s3"):
        for index, label in enumerate(("anger", "sadness", "neutral", "happiness")):
            path = folder / f"{speaker}_{label}.wav"
            path.write_bytes(wav_bytes(tone(0.8 + 0.1 * index, frequency=150.0 * (index + 1))))
            rows.append(f"{path},{label},{speaker}")
    short = folder / "s1_short.wav"
    short.write_bytes(wav_bytes(tone(0.01)))
    rows.append(f"{short},anger,s1")
    (folder / "corpus.csv").write_text("\n".join(rows) + "\n")
    return str(folder / "corpus.csv"), str(short)


def test_scores_over_the_shared_emotions_and_names_the_unreadable_file(tiny_model, corpus_csv, tmp_path, capsys):
    csv_path, short = corpus_csv
    out = tmp_path / "scores.json"
    result = run_here(["evaluate", f"--model={tiny_model}", "--corpus=csv", f"--data_dir={csv_path}", "--json",
                       f"--out={out}"], capsys)
    assert result.returncode == 1, result.stderr[-2000:]  # one file could not be read
    printed, written = json.loads(result.stdout), json.loads(out.read_text())
    assert "predictions" not in printed and {k: v for k, v in written.items() if k != "predictions"} == printed
    assert printed["classes"] == ["anger", "sadness", "neutral"]  # the model's order; no fear, no happiness
    assert printed["n"] == 9 and printed["left_out"] == 3 and list(printed["unreadable"]) == [short]
    assert "too short" in printed["unreadable"][short] and printed["uses_test_speaker_audio"] is False
    # The scores, recomputed here from the written predictions: arg-max among the shared emotions.
    rows = [p for p in written["predictions"] if p["label"] in printed["classes"]]
    predicted = [max(printed["classes"], key=lambda name: p["probabilities"][name]) for p in rows]
    truth = [p["label"] for p in rows]
    recall = {c: 100 * np.mean([t == q for t, q in zip(truth, predicted) if t == c]) for c in printed["classes"]}
    assert printed["ua"] == pytest.approx(np.mean(list(recall.values())), abs=0.01)
    assert printed["wa"] == pytest.approx(100 * np.mean(np.array(truth) == np.array(predicted)), abs=0.01)
    confusion = np.array(printed["confusion"])
    assert confusion.sum() == 9 and list(confusion.sum(axis=1)) == [3, 3, 3]
    assert [confusion[i, i] for i in range(3)] == [sum(t == q == c for t, q in zip(truth, predicted))
                                                  for c in printed["classes"]]
    assert printed["model"] == f"model {tiny_model}"


def test_the_table_the_picture_and_classes_chosen_on_the_command_line(tiny_model, corpus_csv, tmp_path, capsys):
    csv_path, _ = corpus_csv
    plot = tmp_path / "confusion.png"
    result = run_here(["evaluate", f"--model={tiny_model}", "--corpus=csv", f"--data_dir={csv_path}",
                       "--classes=anger,sadness", f"--plot={plot}"], capsys)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"written {plot}" in result.stderr
    assert result.returncode == 1  # the short file again
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"model {tiny_model} on corpus: UA ")  # a CSV corpus is named after its file
    assert "over 2 emotions (anger, sadness; chance UA 50.0)" in first
    assert "6 files, 6 of other classes left out" in first  # neutral and happiness left out by --classes
    assert "confusion (rows true, columns predicted):" in result.stdout and "recall per emotion (%):" in result.stdout
    assert "s1_short.wav: " in result.stdout and "could not be read and are not scored" in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "give exactly one of --model=M.keras or --preset=NAME"),
    (["--preset=encoder_stats_emodb", "--model=x.keras"], "give exactly one of"),
    (["--preset=nope", "--corpus=synthetic"], "unknown --preset 'nope'"),
    (["--model={model}"], "--corpus is required"),
    (["--model={model}", "--corpus=synthetic", "file.wav"], "it takes no file arguments"),
    (["--model={model}", "--corpus=synthetic", "--synthetic_emotions=FL", "--data_dir={tmp}"],
     "share fewer than two emotions"),
    (["--model={model}", "--corpus=synthetic", "--data_dir={tmp}", "--adapt_speaker"],
     "--adapt_speaker needs a speech-encoder model trained with per-speaker normalisation"),
])
def test_bad_requests_stop_with_one_line(tiny_model, tmp_path, capsys, args, message):
    args = [a.replace("{model}", tiny_model).replace("{tmp}", str(tmp_path / "syn")) for a in args]
    result = run_here(["evaluate"] + args, capsys)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("keras-ser evaluate: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_corpus_of_your_own_needs_shared_emotion_names(tiny_model, tmp_path, capsys):
    rows = ["path,label,speaker"]
    for index, label in enumerate(("angry", "sad", "anger")):
        path = tmp_path / f"{index}.wav"
        path.write_bytes(wav_bytes(tone(0.8)))
        rows.append(f"{path},{label},s{index}")
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    result = run_here(["evaluate", f"--model={tiny_model}", "--corpus=csv", f"--data_dir={tmp_path / 'mine.csv'}"],
                      capsys)
    assert result.returncode == 2
    assert "mine: class(es) ['angry', 'sad'] are not shared emotion names" in result.stderr


def test_the_adaptive_preset_is_adapted_to_each_speaker_of_the_corpus(tmp_path, capsys):
    data_dir = tmp_path / "syn"
    common = ["evaluate", "--preset=encoder_stats_multilingual_adaptive", "--corpus=synthetic", f"--data_dir={data_dir}",
              "--synthetic_speakers=2", "--synthetic_per_class=2", "--synthetic_emotions=WTN", "--json"]
    adapted = run_here(common + ["--adapt_speaker", f"--out={tmp_path / 'adapted.json'}"], capsys)
    assert adapted.returncode == 0, adapted.stderr[-2000:]
    scores = json.loads(adapted.stdout)
    assert scores["uses_test_speaker_audio"] is True and scores["n"] == 12
    assert scores["classes"] == ["anger", "sadness", "neutral"]
    assert adapted.stderr.count("adapted from its 6 file(s)") == 2  # each of the two speakers, from its own files
    plain = run_here(common + [f"--out={tmp_path / 'plain.json'}"], capsys)
    assert plain.returncode == 0 and json.loads(plain.stdout)["uses_test_speaker_audio"] is False
    assert "was trained with per-speaker normalisation; without --adapt_speaker" in plain.stderr

    def probabilities(name):
        rows = json.loads((tmp_path / name).read_text())["predictions"]
        return np.array([[row["probabilities"][c] for c in sorted(row["probabilities"])] for row in rows])

    assert not np.allclose(probabilities("adapted.json"), probabilities("plain.json"), atol=1e-3)


def test_predict_files_reports_each_file_as_it_goes(tiny_model, corpus_csv):
    import keras

    from keras_ser.inference import predict_files

    csv_path, short = corpus_csv
    good = csv_path.replace("corpus.csv", "s1_anger.wav")
    seen = []
    results = predict_files(keras.saving.load_model(tiny_model), [good, short],
                            on_file=lambda done, result: seen.append((done, result)))
    assert [done for done, _ in seen] == [1, 2] and [result for _, result in seen] == results
    assert "label" in results[0] and "too short" in results[1]["error"]
