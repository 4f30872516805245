"""RAVDESS and EMOVO readers, the shared emotion names, combined corpora, class selection and leave-one-corpus-out."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from tf_pipeline import corpora
from tf_pipeline.corpora import CorpusError
from tf_pipeline.emotion_vocabulary import EMOTION_MAPS
from tf_pipeline.emotion_vocabulary import SHARED_EMOTIONS
from tf_pipeline.folds import loco_folds


def test_ravdess_counts(ravdess_dir):
    corpus = corpora.ravdess(ravdess_dir)
    assert len(corpus) == 1440
    assert corpus.speakers == tuple(f"{actor:02d}" for actor in range(1, 25))
    assert corpus.class_names == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert list(corpus.counts().values()) == [96] + [192] * 7
    first = corpus.records[0]
    assert os.path.basename(first.path) == "03-01-01-01-01-01-01.flac"
    assert (first.speaker, corpus.class_names[first.label]) == ("01", "neutral")


def test_emovo_counts(emovo_dir):
    corpus = corpora.emovo(emovo_dir)
    assert len(corpus) == 588
    assert corpus.speakers == ("f1", "f2", "f3", "m1", "m2", "m3")
    assert corpus.class_names == ("disgust", "joy", "neutral", "fear", "anger", "surprise", "sadness")
    assert list(corpus.counts().values()) == [84] * 7
    assert {record.speaker for record in corpus.records if "/m2/" in record.path} == {"m2"}


def _copy(source_dir, target_dir, relative_paths):
    for relative in relative_paths:
        os.makedirs(os.path.join(target_dir, os.path.dirname(relative)), exist_ok=True)
        shutil.copy(os.path.join(source_dir, relative), os.path.join(target_dir, relative))


def test_ravdess_lists_misnamed_files(ravdess_dir, tmp_path):
    good = ["Actor_01/03-01-05-01-01-01-01.flac", "Actor_02/03-01-02-02-01-01-02.flac"]
    _copy(ravdess_dir, tmp_path, good)
    assert [record.speaker for record in corpora.ravdess(str(tmp_path)).records] == ["01", "02"]
    source = os.path.join(ravdess_dir, good[0])
    shutil.copy(source, tmp_path / "Actor_01" / "angry_take1.flac")        # not the naming
    shutil.copy(source, tmp_path / "Actor_01" / "03-01-09-01-01-01-01.flac")  # no emotion 09
    shutil.copy(source, tmp_path / "Actor_01" / "03-02-05-01-01-01-01.flac")  # song, not speech
    shutil.copy(source, tmp_path / "Actor_01" / "03-01-05-01-01-02-07.flac")  # actor 07 in Actor_01
    (tmp_path / "Actor_01" / "notes.txt").write_text("not audio: ignored")
    with pytest.raises(CorpusError) as error:
        corpora.ravdess(str(tmp_path))
    message = str(error.value)
    assert "4 file(s) do not fit" in message
    for name in ("angry_take1.flac", "03-01-09-01-01-01-01.flac: unknown emotion code '09'",
                 "03-02-05-01-01-01-01.flac: modality 03, vocal channel 02",
                 "03-01-05-01-01-02-07.flac: actor 07 in the name, but the folder is actor 01"):
        assert name in message
    assert "notes.txt" not in message


def test_ravdess_and_emovo_read_wav_at_any_rate(tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    for relative in ("ravdess/Actor_03/03-01-03-02-01-02-03.wav", "ravdess/Actor_04/03-01-08-01-02-01-04.wav",
                     "emovo/m1/gio-m1-b1.wav", "emovo/f2/tri-f2-n5.wav"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), 0.1 * rng.standard_normal(4800), 48000, subtype="PCM_16")
    ravdess = corpora.ravdess(str(tmp_path / "ravdess"))
    assert [(r.speaker, ravdess.class_names[r.label]) for r in ravdess.records] == [("03", "happy"), ("04", "surprised")]
    emovo = corpora.emovo(str(tmp_path / "emovo"))
    assert [(r.speaker, emovo.class_names[r.label]) for r in emovo.records] == [("f2", "sadness"), ("m1", "joy")]


def test_emovo_lists_misnamed_files(emovo_dir, tmp_path):
    _copy(emovo_dir, tmp_path, ["f1/dis-f1-b1.flac", "m3/rab-m3-l2.flac"])
    assert len(corpora.emovo(str(tmp_path))) == 2
    shutil.copy(tmp_path / "f1" / "dis-f1-b1.flac", tmp_path / "f1" / "xyz-f1-b1.flac")
    shutil.copy(tmp_path / "f1" / "dis-f1-b1.flac", tmp_path / "f1" / "dis-m1-b1.flac")
    shutil.copy(tmp_path / "f1" / "dis-f1-b1.flac", tmp_path / "f1" / "disgust_1.flac")
    with pytest.raises(CorpusError) as error:
        corpora.emovo(str(tmp_path))
    message = str(error.value)
    assert "3 file(s) do not fit" in message
    assert "f1/xyz-f1-b1.flac: unknown emotion code 'xyz'" in message
    assert "f1/dis-m1-b1.flac: speaker m1 in the name, but the folder is f1" in message
    assert "f1/disgust_1.flac: name does not follow EMOVO's" in message


def test_readers_of_missing_or_empty_folders(tmp_path):
    with pytest.raises(CorpusError, match="RAVDESS folder not found"):
        corpora.ravdess(str(tmp_path / "nope"))
    with pytest.raises(CorpusError, match="no Actor_NN folders"):
        corpora.ravdess(str(tmp_path))
    with pytest.raises(CorpusError, match=r"no speaker folders \(f1, f2, f3, m1, m2, m3\)"):
        corpora.emovo(str(tmp_path))


def test_every_corpus_maps_every_class_onto_a_shared_name():
    fixed = {"emodb": corpora.EMODB_EMOTIONS.values(), "casia": corpora.CASIA_EMOTIONS,
             "ravdess": corpora.RAVDESS_EMOTIONS.values(), "emovo": corpora.EMOVO_EMOTIONS.values()}
    for name, classes in fixed.items():
        assert set(EMOTION_MAPS[name]) == set(classes), name
        assert set(EMOTION_MAPS[name].values()) <= set(SHARED_EMOTIONS), name
    assert EMOTION_MAPS["ravdess"]["calm"] == "calm" and EMOTION_MAPS["emovo"]["joy"] == "happiness"


@pytest.fixture(scope="module")
def real_corpora(emodb_dir, ravdess_dir, emovo_dir):
    return (corpora.emodb(emodb_dir, check_files=False), corpora.ravdess(ravdess_dir, check_files=False),
            corpora.emovo(emovo_dir, check_files=False))


def test_combine_names_speakers_by_corpus_and_uses_shared_names(real_corpora):
    emodb, ravdess, emovo = real_corpora
    both = corpora.combine(real_corpora)
    assert both.name == "emodb+ravdess+emovo" and both.corpora == ("emodb", "ravdess", "emovo")
    assert len(both) == 535 + 1440 + 588 and len(both.speakers) == 10 + 24 + 6
    assert {"emodb.03", "ravdess.01", "emovo.f1"} <= set(both.speakers)
    assert both.class_names == SHARED_EMOTIONS
    counts = both.counts()
    assert counts["calm"] == 192 and counts["boredom"] == 81 and counts["neutral"] == 79 + 96 + 84
    assert counts["happiness"] == 71 + 192 + 84
    assert list(np.unique(both.corpus_ids, return_counts=True)[1]) == [535, 588, 1440]
    # A record keeps its file and its emotion, under the shared name.
    index = next(i for i, record in enumerate(both.records) if record.path.endswith("gio-f1-b1.flac"))
    assert both.class_names[both.records[index].label] == "happiness" and both.corpus_ids[index] == "emovo"
    assert "corpora: emodb 535, ravdess 1440, emovo 588" in both.summary()
    # One corpus keeps its own names and summary.
    assert emodb.corpora == () and set(emodb.corpus_ids) == {"emodb"}
    assert "corpora:" not in emodb.summary() and "left out" not in emodb.summary()


def test_combine_refuses_unknown_maps_and_repeated_names(real_corpora, tmp_path):
    emodb = real_corpora[0]
    with pytest.raises(CorpusError, match=r"'emodb' appears 2 times"):
        corpora.combine([emodb, emodb])
    other = dataclasses.replace(emodb, name="berlin")
    with pytest.raises(CorpusError, match=r"No emotion map for corpus 'berlin'; maps exist for \['casia', 'emodb'"):
        corpora.combine([emodb, other])
    assert corpora.combine([real_corpora[1], other], emotion_maps={"berlin": EMOTION_MAPS["emodb"]}).speakers[0] == \
        "berlin.03"
    with pytest.raises(CorpusError, match=r"holds '\.' or '\+'"):
        corpora.combine([emodb, dataclasses.replace(emodb, name="a.b")])
    with pytest.raises(CorpusError, match="already combined"):
        corpora.combine([corpora.combine(real_corpora[:2]), real_corpora[2]])


def test_select_classes_keeps_order_and_counts_left_out_files(real_corpora):
    emodb, ravdess, emovo = real_corpora
    four = ["anger", "happiness", "sadness", "neutral"]
    both = corpora.select_classes(corpora.combine(real_corpora), four)
    assert both.class_names == tuple(four)
    assert list(both.counts().values()) == [127 + 192 + 84, 71 + 192 + 84, 62 + 192 + 84, 79 + 96 + 84]
    assert dict(both.left_out) == {"fear": 345, "disgust": 322, "surprise": 276, "boredom": 81, "calm": 192}
    assert "left out 1216 files of other classes: fear 345, disgust 322" in both.summary()
    # One corpus: its own names, or the shared ones through its map; the names as given.
    native = corpora.select_classes(ravdess, ["sad", "angry"])
    assert native.class_names == ("sad", "angry") and len(native) == 384
    shared = corpora.select_classes(ravdess, ["sadness", "anger", "calm"])
    assert [r.path for r in shared.records if r.label < 2] == [r.path for r in native.records]
    assert dict(shared.left_out) == {"neutral": 96, "happy": 192, "fearful": 192, "disgust": 192, "surprised": 192}
    assert len(corpora.select_classes(emovo, ["joy", "neutral"])) == 168
    assert corpora.select_classes(emovo, ["happiness"]).class_names == ("happiness",)
    # Selected by shared names (and by native and shared names mixed), a corpus still maps to the shared names.
    picked = corpora.to_shared_vocabulary(corpora.select_classes(emovo, ["anger", "happiness", "sadness"]))
    assert picked.class_names == ("anger", "happiness", "sadness") and list(picked.counts().values()) == [84] * 3
    assert [r.path for r in picked.records] == [r.path for r in corpora.select_classes(
        emovo, ["anger", "joy", "sadness"]).records]
    with pytest.raises(CorpusError, match=r"no shared name for class\(es\) \['boredom'\]"):
        corpora.to_shared_vocabulary(dataclasses.replace(emovo, class_names=("boredom",) + emovo.class_names[1:]))


def test_select_classes_errors_list_what_is_available(real_corpora):
    emodb, ravdess, _ = real_corpora
    with pytest.raises(CorpusError) as error:
        corpora.select_classes(ravdess, ["anger", "joy", "boredom"])
    message = str(error.value)
    assert "unknown class(es) ['joy', 'boredom']" in message and "'fearful'" in message
    assert "or by their shared names ['anger', 'happiness', 'sadness', 'fear', 'surprise']" in message
    with pytest.raises(CorpusError, match="'happy' and 'happiness' both name its class 'happy'"):
        corpora.select_classes(ravdess, ["happy", "happiness"])
    with pytest.raises(CorpusError, match=r"\['anger'\] asked for more than once"):
        corpora.select_classes(emodb, ["anger", "anger"])
    with pytest.raises(CorpusError, match="no class to keep"):
        corpora.select_classes(emodb, [])
    with pytest.raises(CorpusError, match="unknown class"):
        corpora.select_classes(corpora.combine(real_corpora[:2]), ["angry"])  # combined: shared names only


def test_read_one_or_several_corpora(emodb_dir, ravdess_dir):
    one = corpora.read("emodb", emodb_dir)
    assert one == corpora.emodb(emodb_dir)
    both = corpora.read("emodb, ravdess", f"{emodb_dir},{ravdess_dir}", classes=["anger", "calm"])
    assert both.name == "emodb+ravdess" and both.class_names == ("anger", "calm") and len(both) == 127 + 192 + 192
    with pytest.raises(CorpusError, match=r"2 corpora \(emodb, ravdess\) but 1 folder"):
        corpora.read("emodb,ravdess", emodb_dir)
    with pytest.raises(CorpusError, match=r"Unknown corpus name\(s\) \['iemocap'\]; the readers are"):
        corpora.read("emodb,iemocap", f"{emodb_dir},{ravdess_dir}")


def test_loco_folds_hold_out_one_whole_corpus(real_corpora):
    both = corpora.combine(real_corpora)
    folds = loco_folds(both)
    assert [fold.test_speaker for fold in folds] == ["emodb", "ravdess", "emovo"]
    ids = both.corpus_ids
    for fold in folds:
        assert fold.protocol == "loco"
        assert set(ids[fold.test_indices]) == {fold.test_speaker}
        assert fold.test_speaker not in set(ids[fold.train_indices])
        assert len(fold.train_indices) + len(fold.test_indices) == len(both)
    assert [fold.test_speaker for fold in loco_folds(both, corpora=["emovo"])] == ["emovo"]
    with pytest.raises(ValueError, match=r"Unknown test corpus\(es\) \['casia'\]"):
        loco_folds(both, corpora=["casia"])
    with pytest.raises(ValueError, match="validation must be 'none'"):
        loco_folds(both, validation="next")
    with pytest.raises(ValueError, match="at least 2 corpora"):
        loco_folds(real_corpora[0])


def _synthetic_corpora(root, names):
    """Small synthetic corpora under different names (2 speakers x 3 emotions x 2 utterances each)."""
    parts = []
    for seed, name in enumerate(names):
        corpus = corpora.synthetic(os.path.join(root, name), n_speakers=2, per_class=2, emotions="WTN", seed=seed)
        parts.append(dataclasses.replace(corpus, name=name))
    return corpora.combine(parts, emotion_maps={name: EMOTION_MAPS["synthetic"] for name in names})


def test_inner_groups_are_the_training_corpora(tmp_path):
    from keras_ser.training.loso import inner_groups
    from tf_pipeline.folds import loso_folds

    combined = _synthetic_corpora(str(tmp_path), ["syn_a", "syn_b", "syn_c"])
    fold = loco_folds(combined)[0]
    groups = inner_groups(combined, fold)
    assert sorted(set(groups["train"])) == ["syn_b", "syn_c"] and set(groups["test"]) == {"syn_a"}
    speaker_fold = loso_folds(combined)[0]
    assert set(inner_groups(combined, speaker_fold)["train"]) == set(combined.speakers) - {"syn_a.01"}
    two = _synthetic_corpora(str(tmp_path), ["syn_a", "syn_b"])  # one training corpus: its speakers
    assert sorted(set(inner_groups(two, loco_folds(two)[0])["train"])) == ["syn_b.01", "syn_b.02"]


def test_inner_folds_of_speakers_and_of_speaker_groups(tmp_path):
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import inner_groups
    from keras_ser.training.report import protocol_text
    from tf_pipeline.folds import loso_folds

    combined = _synthetic_corpora(str(tmp_path), ["syn_a", "syn_b", "syn_c"])  # 6 speakers, 2 per corpus
    fold = loco_folds(combined)[0]                                               # test syn_a
    speakers = inner_groups(combined, fold, "speakers")
    assert sorted(set(speakers["train"])) == ["syn_b.01", "syn_b.02", "syn_c.01", "syn_c.02"]
    groups = inner_groups(combined, fold, "speaker_groups")
    train_speakers = combined.speaker_ids[fold.train_indices]
    # Four training speakers, fewer than five groups: one group each, dealt in sorted order.
    assert dict(zip(train_speakers, groups["train"])) == {"syn_b.01": "speakers 1/4", "syn_b.02": "speakers 2/4",
                                                          "syn_c.01": "speakers 3/4", "syn_c.02": "speakers 4/4"}
    assert set(groups["test"]) == {"syn_a.01", "syn_a.02"}
    many = corpora.synthetic(str(tmp_path / "many"), n_speakers=7, per_class=1, emotions="WT", seed=0)
    groups = inner_groups(many, loso_folds(many)[0], "speaker_groups")["train"]
    assert sorted(set(groups)) == [f"speakers {i}/5" for i in range(1, 6)]
    assert [int(np.sum(groups == f"speakers {i}/5")) for i in range(1, 6)] == [4, 2, 2, 2, 2]  # 6 speakers x 2 files
    with pytest.raises(ValueError, match="inner_folds must be 'auto', 'speakers' or 'speaker_groups'. Received: "
                                         "inner_folds='corpora'"):
        inner_groups(many, loso_folds(many)[0], "corpora")
    with pytest.raises(ValueError, match=r"inner_folds must be one of \('auto', 'speakers', 'speaker_groups'\). "
                                         "Received: inner_folds='five'"):
        TrainConfig(model="encoder_stats", recipe="probe", inner_folds="five")
    with pytest.raises(ValueError, match="inner_folds chooses the 'probe' recipe's C. Received: "
                                         "inner_folds='speakers', recipe='frozen'"):
        TrainConfig(model="encoder_sru", recipe="frozen", inner_folds="speakers")
    config = TrainConfig(model="encoder_stats", recipe="probe", inner_folds="speaker_groups").to_dict()
    text = protocol_text(config, loco=True)
    assert "chosen by leaving out each of 5 groups of whole training speakers (sorted, dealt round-robin)" in text
    assert "leave-one-corpus-out over the training corpora" not in text
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from tf_pipeline.config import FrontEndConfig

    with_front_end = protocol_text(config, MelFramesConfig(front_end=FrontEndConfig()).to_dict(), loco=True)
    assert "audio as the speech front end leaves it (below), leading and trailing silence" in with_front_end
    assert "raw audio" not in with_front_end and "raw audio (no volume normalisation)" in text


def test_loco_run_names_folds_by_corpus_chooses_c_on_training_corpora_and_resumes(tmp_path):
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import run_loso

    combined = _synthetic_corpora(str(tmp_path / "data"), ["syn_a", "syn_b", "syn_c"])
    combined = corpora.select_classes(combined, ["anger", "sadness"])
    config = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8)
    run_dir = tmp_path / "loco"
    lines = []
    run_loso(combined, config, str(run_dir), speakers=["syn_b"], verbose=0, tensorboard=False, protocol="loco",
             log=lines.append)
    first = run_dir / "fold_syn_b.json"
    stamp = first.stat().st_mtime_ns
    report = run_loso(combined, config, str(run_dir), verbose=0, tensorboard=False, protocol="loco",
                      log=lines.append)
    assert "[fold 2/3] corpus syn_b: already done" in "\n".join(lines)
    assert first.stat().st_mtime_ns == stamp
    assert sorted(path.name for path in run_dir.glob("fold_*.json")) == ["fold_syn_a.json", "fold_syn_b.json",
                                                                         "fold_syn_c.json"]
    fold = json.loads(first.read_text())
    assert fold["evaluation"] == "loco" and fold["train_corpora"] == ["syn_a", "syn_c"]
    assert fold["history"]["probe"]["inner_groups"] == ["syn_a", "syn_c"]
    assert fold["n_test"] == 8 and fold["n_train"] == 16 and fold["class_names"] == ["anger", "sadness"]
    assert all("/syn_b/" in p["path"] for p in fold["predictions"])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["evaluation"] == "loco" and run["speakers"] == ["syn_a", "syn_b", "syn_c"]
    assert run["left_out"] == {"neutral": 12} and run["corpora"] == ["syn_a", "syn_b", "syn_c"]
    assert report["evaluation"] == "loco" and report["complete"] and report["pooled"]["n"] == 24
    assert report["left_out"] == {"neutral": 12} and report["class_names"] == ["anger", "sadness"]
    assert [f["train_corpora"] for f in report["folds"]][0] == ["syn_b", "syn_c"]
    markdown = (run_dir / "results.md").read_text()
    assert markdown.startswith("# Leave-one-corpus-out on syn_a+syn_b+syn_c")
    assert "} chosen by leave-one-corpus-out over the training corpora (mean UA)" in markdown
    assert "| Test corpus |" in markdown and "left out 12 files of other classes (neutral 12)" in markdown
    # The same folder as a speaker-level run is another run.
    with pytest.raises(ValueError, match="evaluation: 'loco' \\(stored\\) vs 'loso' \\(now\\)"):
        run_loso(combined, config, str(run_dir), verbose=0, tensorboard=False)


def test_cli_reads_combined_corpora_with_classes(emodb_dir, ravdess_dir):
    from absl import flags

    from keras_ser_cli import corpus_flags
    from keras_ser_cli.main import UsageError

    def load(*args):
        flag_values = flags.FlagValues()
        corpus_flags.define(flag_values, default_corpus="emodb")
        flag_values(["keras-ser", *args])
        return corpus_flags.load(flag_values)

    corpus = load("--corpus=emodb,ravdess", f"--data_dir={emodb_dir},{ravdess_dir}",
                  "--classes=anger,happiness,sadness,neutral")
    assert corpus.name == "emodb+ravdess" and corpus.class_names == ("anger", "happiness", "sadness", "neutral")
    assert len(corpus) == 339 + 672 and dict(corpus.left_out)["calm"] == 192
    assert load(f"--data_dir={emodb_dir}") == corpora.emodb(emodb_dir)  # one corpus: as before
    assert load("--corpus=ravdess", f"--data_dir={ravdess_dir}", "--classes=angry,sadness").class_names == \
        ("angry", "sadness")
    with pytest.raises(UsageError, match="--corpus names 2 corpora .* but --data_dir has 1 folder"):
        load("--corpus=emodb,ravdess", f"--data_dir={emodb_dir}")
    with pytest.raises(UsageError, match=r"unknown class\(es\) \['joy'\]"):
        load("--corpus=emodb,ravdess", f"--data_dir={emodb_dir},{ravdess_dir}", "--classes=anger,joy")
    with pytest.raises(flags.IllegalFlagValueError, match="value should be one of"):
        load("--corpus=emodb,dir", "--data_dir=a,b")


def test_loso_cli_refuses_loco_without_several_corpora(emodb_dir, tmp_path, capsys):
    from keras_ser_cli.main import run as entry

    run_dir = tmp_path / "run"
    for args, message in (
        ([f"--data_dir={emodb_dir}"], "--protocol=loco needs several corpora"),
        (["--corpus=synthetic,emodb", f"--data_dir=,{emodb_dir}", "--validation=next"],
         "--protocol=loco holds out no validation speaker"),
    ):
        capsys.readouterr()
        assert entry(["keras-ser", "loso", "--protocol=loco", f"--run_dir={run_dir}"] + args) == 2
        assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_loco_speaker_norm_adapts_the_head_to_every_test_speaker(tmp_path):
    """Under leave-one-corpus-out the test part holds several speakers: each gets its own statistics."""
    from keras_ser.training import recipes
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.loso import fold_test_probabilities
    from keras_ser.training.loso import make_fold_data

    combined = _synthetic_corpora(str(tmp_path / "data"), ["syn_a", "syn_b", "syn_c"])
    config = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8, speaker_norm=True)
    fold = loco_folds(combined)[0]
    feature_config = feature_config_for(config)
    data = make_fold_data(combined, fold, config, feature_config)
    assert list(data.test_speaker_stats) == ["syn_a.01", "syn_a.02"]
    model = recipes.train(config, data, feature_config=feature_config, verbose=0).model
    standardize = model.get_layer("standardize")
    before = [np.array(weight) for weight in standardize.get_weights()]
    probabilities = fold_test_probabilities(config, data, model)
    # The probe on the test features standardised per speaker (numpy, `features("test")`), through the
    # model's last layer: what `keras_ser.adapt` gives each speaker.
    expected = np.asarray(model.get_layer("predictions")(data.features("test")))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    for weight, kept in zip(standardize.get_weights(), before):
        np.testing.assert_array_equal(weight, kept)  # the layer keeps the first test speaker's statistics
    # The second speaker standardised with the first one's statistics (the former test pass) scores otherwise.
    first_only = np.asarray(model.head_model()(data.pooled_features("test"), training=False))
    second = data.speakers["test"] == "syn_a.02"
    assert np.abs(first_only[second] - expected[second]).max() > 1e-3
