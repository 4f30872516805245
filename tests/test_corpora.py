"""Corpus readers and LOSO folds."""

import os
import shutil

import numpy as np
import pytest

from conftest import tone, wav_bytes
from tf_pipeline import corpora, loso_folds
from tf_pipeline.corpora import CorpusError


def test_emodb_counts(emodb_dir):
    corpus = corpora.emodb(emodb_dir)
    assert len(corpus) == 535
    assert len(corpus.speakers) == 10
    assert corpus.class_names == ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
    assert list(corpus.counts().values()) == [127, 81, 46, 69, 71, 62, 79]
    first = corpus.records[0]
    assert os.path.basename(first.path) == "03a01Fa.wav"
    assert (first.speaker, corpus.class_names[first.label]) == ("03", "happiness")


def test_emodb_accepts_parent_folder(emodb_dir, tmp_path):
    os.symlink(emodb_dir, tmp_path / "wav")
    assert len(corpora.emodb(str(tmp_path), check_files=False)) == 535


def test_emodb_missing_folder(tmp_path):
    with pytest.raises(CorpusError, match="EMO-DB folder not found: .*nope"):
        corpora.emodb(str(tmp_path / "nope"))


def test_emodb_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match="no .wav files found"):
        corpora.emodb(str(tmp_path))


def test_emodb_lists_misnamed_and_unreadable_files(tmp_path):
    good = wav_bytes(tone(0.2))
    (tmp_path / "03a01Fa.wav").write_bytes(good)
    (tmp_path / "notes.wav").write_bytes(good)
    (tmp_path / "03a01Xa.wav").write_bytes(good)
    with pytest.raises(CorpusError) as error:
        corpora.emodb(str(tmp_path))
    assert "2 file(s) do not fit" in str(error.value)
    assert "notes.wav" in str(error.value) and "unknown emotion letter 'X'" in str(error.value)
    os.remove(tmp_path / "notes.wav")
    os.remove(tmp_path / "03a01Xa.wav")
    (tmp_path / "03a02Wa.wav").write_bytes(b"")
    (tmp_path / "03a03Wa.wav").write_bytes(b"garbage" * 20)
    with pytest.raises(CorpusError) as error:
        corpora.emodb(str(tmp_path))
    message = str(error.value)
    assert "2 of 3 audio files cannot be read" in message
    assert "03a02Wa.wav: empty file" in message and "03a03Wa.wav: not readable audio" in message


def make_casia(root, speakers=("liuchanhg", "wangzhe"), emotions=("angry", "happy", "sad"), per=2):
    for speaker in speakers:
        for emotion in emotions:
            folder = root / speaker / emotion
            folder.mkdir(parents=True)
            for index in range(per):
                (folder / f"{201 + index}.wav").write_bytes(wav_bytes(tone(0.1, frequency=200 + index)))


def test_casia_layout(tmp_path):
    make_casia(tmp_path)
    corpus = corpora.casia(str(tmp_path))
    assert len(corpus) == 12
    assert corpus.speakers == ("liuchanhg", "wangzhe")
    assert corpus.class_names == corpora.CASIA_EMOTIONS
    assert dict(corpus.counts()) == {"angry": 4, "fear": 0, "happy": 4, "neutral": 0, "sad": 4, "surprise": 0}


def test_casia_unknown_emotion_is_listed(tmp_path):
    make_casia(tmp_path, emotions=("angry", "bored"))
    with pytest.raises(CorpusError, match="liuchanhg/bored: unknown emotion folder"):
        corpora.casia(str(tmp_path))


def test_from_directory_both_layouts(tmp_path):
    make_casia(tmp_path / "a", emotions=("calm", "excited"))
    corpus = corpora.from_directory(str(tmp_path / "a"))
    assert corpus.class_names == ("calm", "excited") and len(corpus) == 8
    for label in ("calm", "excited"):
        folder = tmp_path / "b" / label
        folder.mkdir(parents=True)
        for speaker in ("ann", "bob"):
            (folder / f"{speaker}_1.wav").write_bytes(wav_bytes(tone(0.1)))
    corpus = corpora.from_directory(str(tmp_path / "b"), layout="label", speaker_pattern=r"^(?P<speaker>[a-z]+)_")
    assert corpus.speakers == ("ann", "bob") and len(corpus) == 4
    with pytest.raises(CorpusError, match=r"unknown label\(s\) \['excited'\]"):
        corpora.from_directory(str(tmp_path / "b"), layout="label", speaker_pattern=r"^(?P<speaker>[a-z]+)_",
                               class_names=["calm"])
    with pytest.raises(ValueError, match="speaker_pattern"):
        corpora.from_directory(str(tmp_path / "b"), layout="label")


def test_from_csv(tmp_path):
    (tmp_path / "x.wav").write_bytes(wav_bytes(tone(0.1)))
    (tmp_path / "y.wav").write_bytes(wav_bytes(tone(0.1)))
    (tmp_path / "list.csv").write_text("path,label,speaker\nx.wav,happy,s1\ny.wav,sad,s2\n")
    corpus = corpora.from_csv(str(tmp_path / "list.csv"))
    assert corpus.class_names == ("happy", "sad") and corpus.speakers == ("s1", "s2")
    (tmp_path / "bad.csv").write_text("path,label,speaker\nx.wav,happy,\nmissing.wav,sad,s2\n")
    with pytest.raises(CorpusError, match="line 2: empty speaker"):
        corpora.from_csv(str(tmp_path / "bad.csv"))
    (tmp_path / "bad2.csv").write_text("path,label,speaker\nmissing.wav,sad,s2\n")
    with pytest.raises(CorpusError, match="missing.wav: cannot be read"):
        corpora.from_csv(str(tmp_path / "bad2.csv"))
    (tmp_path / "bad3.csv").write_text("file,label\nx.wav,sad\n")
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['path', 'speaker'\]"):
        corpora.from_csv(str(tmp_path / "bad3.csv"))


def test_synthetic_is_deterministic_and_refuses_mixing(tmp_path):
    a = corpora.synthetic(str(tmp_path / "a"), n_speakers=2, per_class=2, emotions="WT", seed=3)
    b = corpora.synthetic(str(tmp_path / "b"), n_speakers=2, per_class=2, emotions="WT", seed=3)
    assert a.class_names == ("anger", "sadness") and len(a) == 8 and a.name == "synthetic"
    for ra, rb in zip(a.records, b.records):
        assert open(ra.path, "rb").read() == open(rb.path, "rb").read()
    with pytest.raises(ValueError, match="other settings"):
        corpora.synthetic(str(tmp_path / "a"), n_speakers=3, per_class=2, emotions="WT", seed=3)


@pytest.mark.parametrize("validation", ["none", "next"])
def test_loso_folds_disjoint_and_cover_every_utterance_once(emodb_dir, validation):
    corpus = corpora.emodb(emodb_dir, check_files=False)
    folds = loso_folds(corpus, validation=validation)
    assert [fold.test_speaker for fold in folds] == list(corpus.speakers)
    speakers = corpus.speaker_ids
    covered = np.concatenate([fold.test_indices for fold in folds])
    assert sorted(covered.tolist()) == list(range(len(corpus)))
    for fold in folds:
        assert set(speakers[fold.test_indices]) == {fold.test_speaker}
        assert fold.test_speaker not in set(speakers[fold.train_indices])
        parts = [fold.train_indices, fold.test_indices, fold.validation_indices]
        assert sum(map(len, parts)) == len(corpus)
        if validation == "next":
            assert set(speakers[fold.validation_indices]) == {fold.validation_speaker}
            assert fold.validation_speaker != fold.test_speaker
            assert fold.validation_speaker not in set(speakers[fold.train_indices])


def test_loso_folds_bad_arguments(emodb_dir):
    corpus = corpora.emodb(emodb_dir, check_files=False)
    with pytest.raises(ValueError, match=r"Unknown test speaker\(s\) \['99'\]"):
        loso_folds(corpus, speakers=["99"])
    with pytest.raises(ValueError, match="empty list"):
        loso_folds(corpus, speakers=[])
    with pytest.raises(ValueError, match="validation='last'"):
        loso_folds(corpus, validation="last")
    assert [f.test_speaker for f in loso_folds(corpus, speakers=["08", "03"])] == ["08", "03"]
