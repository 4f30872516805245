"""Corpus readers (EMO-DB, CASIA, RAVDESS, EMOVO, a folder per label, a CSV, the synthetic corpus), combining corpora and choosing classes.

Every reader returns a `Corpus`: records (path, label index, speaker), the
class names and the speakers. Readers never return a silently smaller
corpus: a missing folder, no audio, an unknown label, a file name that does
not follow the layout or an unreadable file is a `CorpusError` that lists
what was wrong.

`combine` joins corpora under the shared emotion names of
`tf_pipeline.emotion_vocabulary` (speakers named `<corpus>.<speaker>`);
`select_classes` keeps some classes and counts the files it leaves out.
"""

import collections
import csv
import dataclasses
import os
import re

import numpy as np

from tf_pipeline.emotion_vocabulary import EMOTION_MAPS
from tf_pipeline.emotion_vocabulary import SHARED_EMOTIONS

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

EMODB_EMOTIONS = collections.OrderedDict(
    [
        ("W", "anger"),
        ("L", "boredom"),
        ("E", "disgust"),
        ("A", "fear"),
        ("F", "happiness"),
        ("T", "sadness"),
        ("N", "neutral"),
    ]
)
EMODB_PATTERN = re.compile(r"^(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])\.wav$")

CASIA_EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")

RAVDESS_EMOTIONS = collections.OrderedDict(
    [
        ("01", "neutral"),
        ("02", "calm"),
        ("03", "happy"),
        ("04", "sad"),
        ("05", "angry"),
        ("06", "fearful"),
        ("07", "disgust"),
        ("08", "surprised"),
    ]
)
RAVDESS_PATTERN = re.compile(
    r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-(?P<statement>\d\d)"
    r"-(?P<repetition>\d\d)-(?P<actor>\d\d)\.(?:wav|flac)$",
    re.IGNORECASE,
)
RAVDESS_ACTOR_DIR = re.compile(r"^Actor_(?P<actor>\d\d)$")

# EMOVO's Italian codes: disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza.
EMOVO_EMOTIONS = collections.OrderedDict(
    [
        ("dis", "disgust"),
        ("gio", "joy"),
        ("neu", "neutral"),
        ("pau", "fear"),
        ("rab", "anger"),
        ("sor", "surprise"),
        ("tri", "sadness"),
    ]
)
EMOVO_PATTERN = re.compile(r"^(?P<emotion>[a-z]{3})-(?P<speaker>[fm]\d)-(?P<sentence>[a-z]\d)\.(?:wav|flac)$",
                           re.IGNORECASE)

_SHOWN = 10  # problems listed in an error message before "... and N more"


class CorpusError(ValueError):
    """A corpus that cannot be read as asked; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One utterance: its audio file, label index and speaker id."""

    path: str
    label: int
    speaker: str


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Labelled utterances with speakers, as every corpus reader returns them.

    Attributes:
        name: str, e.g. "emodb", or "emodb+ravdess" for corpora joined by `combine`.
        records: tuple of `Record`.
        class_names: tuple of str; `Record.label` indexes it.
        corpora: tuple of str, the names of the corpora `combine` joined
            (their speakers are named `<corpus>.<speaker>`); empty for one corpus.
        left_out: tuple of `(class name, number of files)` that
            `select_classes` left out; empty when every class was kept.

    Example:

    >>> corpus = emodb("/data/emodb/wav")     # doctest: +SKIP
    >>> len(corpus), corpus.speakers[:3]      # doctest: +SKIP
    (535, ('03', '08', '09'))
    """

    name: str
    records: tuple
    class_names: tuple
    corpora: tuple = ()
    left_out: tuple = ()

    @property
    def speakers(self):
        """Sorted tuple of the distinct speaker ids."""
        return tuple(sorted({record.speaker for record in self.records}))

    @property
    def paths(self):
        return [record.path for record in self.records]

    @property
    def labels(self):
        """int64 numpy array of label indices, one per record."""
        return np.array([record.label for record in self.records], dtype=np.int64)

    @property
    def speaker_ids(self):
        """numpy array of each record's speaker id."""
        return np.array([record.speaker for record in self.records])

    @property
    def corpus_ids(self):
        """numpy array of each record's corpus name (the `<corpus>` of its
        speaker `<corpus>.<speaker>` in a combined corpus, else `name`)."""
        if not self.corpora:
            return np.array([self.name] * len(self.records))
        return np.array([record.speaker.split(".", 1)[0] for record in self.records])

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.records)

    def counts(self):
        """Utterances per class name, in class order."""
        counter = collections.Counter(record.label for record in self.records)
        return collections.OrderedDict((name, counter[i]) for i, name in enumerate(self.class_names))

    def subset(self, indices):
        """A corpus holding only the records at `indices`."""
        return dataclasses.replace(self, records=tuple(self.records[int(i)] for i in indices))

    def summary(self):
        """A few human-readable lines: size, speakers, classes with counts."""
        counts = ", ".join(f"{name} {count}" for name, count in self.counts().items())
        text = (
            f"{self.name}: {len(self)} utterances, {len(self.speakers)} speakers "
            f"({', '.join(self.speakers)}), {self.num_classes} classes: {counts}"
        )
        if self.corpora:
            per_corpus = collections.Counter(self.corpus_ids.tolist())
            text += "; corpora: " + ", ".join(f"{name} {per_corpus[name]}" for name in self.corpora)
        if self.left_out:
            left = ", ".join(f"{name} {count}" for name, count in self.left_out)
            text += f"; left out {sum(count for _, count in self.left_out)} files of other classes: {left}"
        return text


def _problem_list(problems):
    shown = [f"  - {problem}" for problem in problems[:_SHOWN]]
    if len(problems) > _SHOWN:
        shown.append(f"  ... and {len(problems) - _SHOWN} more")
    return "\n".join(shown)


def _require_dir(data_dir, what):
    if data_dir is None or not os.path.isdir(data_dir):
        raise CorpusError(f"{what} folder not found: {data_dir!r}")
    return os.path.abspath(data_dir)


def _audio_problem(path):
    """Why `path` is not readable audio, or None when its header looks valid."""
    try:
        size = os.path.getsize(path)
    except OSError as error:
        return f"{path}: cannot be read ({error.strerror})"
    if size == 0:
        return f"{path}: empty file (0 bytes)"
    try:
        import soundfile
    except ImportError:
        soundfile = None
    if soundfile is not None:
        try:
            info = soundfile.info(path)
        except Exception as error:
            return f"{path}: not readable audio ({str(error).strip()})"
        if info.frames == 0:
            return f"{path}: holds no audio samples"
        return None
    with open(path, "rb") as handle:
        header = handle.read(12)
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        return None if size > 44 else f"{path}: WAV header without audio data"
    return f"{path}: not a WAV file (install soundfile for FLAC/OGG: pip install 'keras-ser[audio]')"


def _check_readable(paths, corpus_name):
    problems = [problem for problem in map(_audio_problem, paths) if problem]
    if problems:
        raise CorpusError(
            f"{corpus_name}: {len(problems)} of {len(paths)} audio files cannot be read:\n{_problem_list(problems)}"
        )


def _finish(name, records, class_names, check_files):
    if not records:
        raise CorpusError(f"{name}: no utterances found")
    if check_files:
        _check_readable([record.path for record in records], name)
    return Corpus(name=name, records=tuple(sorted(records, key=lambda r: r.path)), class_names=tuple(class_names))


def emodb(data_dir, check_files=True):
    """The Berlin Database of Emotional Speech (EMO-DB, Burkhardt et al. 2005).

    Reads the 535 WAV files of the official `wav/` folder, named like
    `03a01Fa.wav`: speaker `03`, text `a01`, emotion letter `F`, version `a`.
    Classes, in this order: anger (W), boredom (L), disgust (E), fear (A),
    happiness (F), sadness (T), neutral (N). The synthetic corpus uses the
    same naming and is read by this function too.

    Args:
        data_dir: the folder of WAV files (or its parent holding `wav/`).
        check_files: bool. Check every file's header is readable audio.
            Defaults to `True`.

    Returns:
        A `Corpus` named "emodb".

    Example:

    >>> corpus = emodb("/data/emodb/wav")     # doctest: +SKIP
    >>> dict(corpus.counts())["anger"]        # doctest: +SKIP
    127
    """
    data_dir = _require_dir(data_dir, "EMO-DB")
    if os.path.isdir(os.path.join(data_dir, "wav")):
        data_dir = os.path.join(data_dir, "wav")
    letters = list(EMODB_EMOTIONS)
    records, problems = [], []
    for entry in sorted(os.listdir(data_dir)):
        if not entry.lower().endswith(".wav"):
            continue
        match = EMODB_PATTERN.match(entry)
        if match is None:
            problems.append(f"{entry}: name does not follow EMO-DB's <speaker 2 digits><text a01><emotion letter><version>.wav")
        elif match["emotion"] not in EMODB_EMOTIONS:
            problems.append(f"{entry}: unknown emotion letter {match['emotion']!r} (expected one of {''.join(letters)})")
        else:
            records.append(Record(os.path.join(data_dir, entry), letters.index(match["emotion"]), match["speaker"]))
    if problems:
        raise CorpusError(f"EMO-DB folder {data_dir}: {len(problems)} file(s) do not fit:\n{_problem_list(problems)}")
    if not records:
        raise CorpusError(f"EMO-DB folder {data_dir}: no .wav files found")
    return _finish("emodb", records, EMODB_EMOTIONS.values(), check_files)


def casia(data_dir, check_files=True):
    """The CASIA Chinese emotional speech corpus, public 1200-utterance subset.

    Layout: `<speaker>/<emotion>/<id>.wav` with emotions angry, fear, happy,
    neutral, sad, surprise (4 speakers x 6 emotions x 50 texts).

    Args:
        data_dir: the folder holding one folder per speaker.
        check_files: bool. Check every file's header. Defaults to `True`.

    Returns:
        A `Corpus` named "casia" with the six classes in the order above.
    """
    data_dir = _require_dir(data_dir, "CASIA")
    records, problems = [], []
    for speaker in sorted(os.listdir(data_dir)):
        speaker_dir = os.path.join(data_dir, speaker)
        if not os.path.isdir(speaker_dir):
            continue
        for emotion in sorted(os.listdir(speaker_dir)):
            emotion_dir = os.path.join(speaker_dir, emotion)
            if not os.path.isdir(emotion_dir):
                continue
            if emotion not in CASIA_EMOTIONS:
                problems.append(f"{speaker}/{emotion}: unknown emotion folder (expected one of {', '.join(CASIA_EMOTIONS)})")
                continue
            for entry in sorted(os.listdir(emotion_dir)):
                if entry.lower().endswith(".wav"):
                    records.append(Record(os.path.join(emotion_dir, entry), CASIA_EMOTIONS.index(emotion), speaker))
    if problems:
        raise CorpusError(f"CASIA folder {data_dir}: {len(problems)} problem(s):\n{_problem_list(problems)}")
    if not records:
        raise CorpusError(f"CASIA folder {data_dir}: no <speaker>/<emotion>/<id>.wav files found")
    return _finish("casia", records, CASIA_EMOTIONS, check_files)


def _speaker_folders(data_dir, pattern):
    """`(folder name, match)` of the sub-folders of `data_dir` whose name matches `pattern`, sorted."""
    found = []
    for entry in sorted(os.listdir(data_dir)):
        match = pattern.match(entry)
        if match is not None and os.path.isdir(os.path.join(data_dir, entry)):
            found.append((entry, match))
    return found


def ravdess(data_dir, check_files=True):
    """The speech part of RAVDESS (Livingstone & Russo 2018), audio only.

    Reads the layout of the official `Audio_Speech_Actors_01-24` archive:
    `Actor_01/` .. `Actor_24/`, each holding files named like
    `03-01-06-01-02-01-12.wav`: modality `03` (audio only), vocal channel
    `01` (speech), emotion `06`, intensity, statement, repetition and actor
    `12` (the speaker). WAV or FLAC at any sample rate (the audio loader
    resamples). Classes, in the order of their codes: neutral (01), calm
    (02), happy (03), sad (04), angry (05), fearful (06), disgust (07),
    surprised (08); `tf_pipeline.emotion_vocabulary.EMOTION_MAPS["ravdess"]`
    maps them onto the shared names ("calm" stays "calm").

    Args:
        data_dir: the folder holding the `Actor_NN` folders.
        check_files: bool. Check every file's header is readable audio.
            Defaults to `True`.

    Returns:
        A `Corpus` named "ravdess"; speakers are the actors "01" .. "24".

    Raises:
        CorpusError: no `Actor_NN` folder, or files whose name does not fit
            (another modality or channel, an unknown emotion code, an actor
            that is not the folder's), listed.

    Example:

    >>> corpus = ravdess("/data/ravdess")     # doctest: +SKIP
    >>> len(corpus), len(corpus.speakers), dict(corpus.counts())["neutral"]   # doctest: +SKIP
    (1440, 24, 96)
    """
    data_dir = _require_dir(data_dir, "RAVDESS")
    folders = _speaker_folders(data_dir, RAVDESS_ACTOR_DIR)
    if not folders:
        raise CorpusError(f"RAVDESS folder {data_dir}: no Actor_NN folders found")
    codes = list(RAVDESS_EMOTIONS)
    records, problems = [], []
    for folder, folder_match in folders:
        folder_dir = os.path.join(data_dir, folder)
        for entry in sorted(os.listdir(folder_dir)):
            if not entry.lower().endswith(AUDIO_EXTENSIONS):
                continue
            match = RAVDESS_PATTERN.match(entry)
            where = f"{folder}/{entry}"
            if match is None:
                problems.append(f"{where}: name does not follow RAVDESS's 03-01-<emotion>-<intensity>-<statement>-"
                                "<repetition>-<actor>.wav (two digits each; .wav or .flac)")
            elif (match["modality"], match["channel"]) != ("03", "01"):
                problems.append(f"{where}: modality {match['modality']}, vocal channel {match['channel']}; "
                                "expected 03 (audio only) and 01 (speech)")
            elif match["emotion"] not in RAVDESS_EMOTIONS:
                problems.append(f"{where}: unknown emotion code {match['emotion']!r} (expected one of {', '.join(codes)})")
            elif match["actor"] != folder_match["actor"]:
                problems.append(f"{where}: actor {match['actor']} in the name, but the folder is actor {folder_match['actor']}")
            else:
                records.append(Record(os.path.join(folder_dir, entry), codes.index(match["emotion"]), match["actor"]))
    if problems:
        raise CorpusError(f"RAVDESS folder {data_dir}: {len(problems)} file(s) do not fit:\n{_problem_list(problems)}")
    if not records:
        raise CorpusError(f"RAVDESS folder {data_dir}: no .wav or .flac files in its Actor_NN folders")
    return _finish("ravdess", records, RAVDESS_EMOTIONS.values(), check_files)


def emovo(data_dir, check_files=True):
    """EMOVO, the Italian emotional speech corpus (Costantini et al. 2014).

    Reads the original layout: one folder per speaker (`f1`, `f2`, `f3`,
    `m1`, `m2`, `m3`), each holding files named like `gio-f1-b1.wav`: the
    Italian emotion code, the speaker (the folder's name) and the sentence.
    WAV or FLAC at any sample rate. Classes, in the order of their codes,
    with English names: disgust (dis, disgusto), joy (gio, gioia), neutral
    (neu, neutro), fear (pau, paura), anger (rab, rabbia), surprise (sor,
    sorpresa), sadness (tri, tristezza); `EMOTION_MAPS["emovo"]` maps "joy"
    to the shared "happiness".

    Args:
        data_dir: the folder holding the speaker folders.
        check_files: bool. Check every file's header is readable audio.
            Defaults to `True`.

    Returns:
        A `Corpus` named "emovo"; speakers are the codes "f1" .. "m3".

    Raises:
        CorpusError: no speaker folder, or files whose name does not fit (an
            unknown emotion code, a speaker that is not the folder's), listed.

    Example:

    >>> corpus = emovo("/data/emovo")         # doctest: +SKIP
    >>> len(corpus), corpus.speakers          # doctest: +SKIP
    (588, ('f1', 'f2', 'f3', 'm1', 'm2', 'm3'))
    """
    data_dir = _require_dir(data_dir, "EMOVO")
    folders = _speaker_folders(data_dir, re.compile(r"^[fm]\d$"))
    if not folders:
        raise CorpusError(f"EMOVO folder {data_dir}: no speaker folders (f1, f2, f3, m1, m2, m3) found")
    codes = list(EMOVO_EMOTIONS)
    records, problems = [], []
    for folder, _ in folders:
        folder_dir = os.path.join(data_dir, folder)
        for entry in sorted(os.listdir(folder_dir)):
            if not entry.lower().endswith(AUDIO_EXTENSIONS):
                continue
            match = EMOVO_PATTERN.match(entry)
            where = f"{folder}/{entry}"
            if match is None:
                problems.append(f"{where}: name does not follow EMOVO's <emotion code>-<speaker>-<sentence>.wav "
                                "(e.g. gio-f1-b1.wav; .wav or .flac)")
            elif match["emotion"].lower() not in EMOVO_EMOTIONS:
                problems.append(f"{where}: unknown emotion code {match['emotion']!r} (expected one of {', '.join(codes)})")
            elif match["speaker"].lower() != folder:
                problems.append(f"{where}: speaker {match['speaker']} in the name, but the folder is {folder}")
            else:
                records.append(Record(os.path.join(folder_dir, entry), codes.index(match["emotion"].lower()), folder))
    if problems:
        raise CorpusError(f"EMOVO folder {data_dir}: {len(problems)} file(s) do not fit:\n{_problem_list(problems)}")
    if not records:
        raise CorpusError(f"EMOVO folder {data_dir}: no .wav or .flac files in its speaker folders")
    return _finish("emovo", records, EMOVO_EMOTIONS.values(), check_files)


def _resolve_classes(found, class_names, where):
    if class_names is None:
        return tuple(sorted(found))
    class_names = tuple(class_names)
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise CorpusError(f"{where}: unknown label(s) {unknown}; expected one of {list(class_names)}")
    return class_names


def from_directory(data_dir, layout="speaker/label", speaker_pattern=None, class_names=None, check_files=True):
    """A corpus laid out as folders named after the labels.

    Args:
        data_dir: the corpus folder.
        layout: `"speaker/label"` for `<speaker>/<label>/<file>` (speaker from
            the folder) or `"label"` for `<label>/<file>` (speaker from the
            file name with `speaker_pattern`). Defaults to `"speaker/label"`.
        speaker_pattern: regex with a group named `speaker`, searched in the
            file name; required with `layout="label"`.
        class_names: optional list of allowed labels, in class-index order;
            a folder not in it is an error. Defaults to the sorted folder names.
        check_files: bool. Check every file's header. Defaults to `True`.

    Returns:
        A `Corpus` named after the folder.

    Example:

    >>> corpus = from_directory("my_corpus", layout="label",
    ...                         speaker_pattern=r"^(?P<speaker>[a-z]+)_")  # doctest: +SKIP
    """
    data_dir = _require_dir(data_dir, "Corpus")
    if layout not in ("speaker/label", "label"):
        raise ValueError(f"layout must be 'speaker/label' or 'label'. Received: layout={layout!r}")
    if layout == "label":
        if not speaker_pattern:
            raise ValueError("layout='label' needs speaker_pattern, a regex with a (?P<speaker>...) group")
        pattern = re.compile(speaker_pattern)
        if "speaker" not in pattern.groupindex:
            raise ValueError(f"speaker_pattern needs a group named 'speaker'. Received: {speaker_pattern!r}")
    found = []  # (path, label name, speaker)
    problems = []
    if layout == "speaker/label":
        for speaker in sorted(os.listdir(data_dir)):
            speaker_dir = os.path.join(data_dir, speaker)
            if not os.path.isdir(speaker_dir):
                continue
            for label in sorted(os.listdir(speaker_dir)):
                label_dir = os.path.join(speaker_dir, label)
                if os.path.isdir(label_dir):
                    for entry in sorted(os.listdir(label_dir)):
                        if entry.lower().endswith(AUDIO_EXTENSIONS):
                            found.append((os.path.join(label_dir, entry), label, speaker))
    else:
        for label in sorted(os.listdir(data_dir)):
            label_dir = os.path.join(data_dir, label)
            if not os.path.isdir(label_dir):
                continue
            for entry in sorted(os.listdir(label_dir)):
                if not entry.lower().endswith(AUDIO_EXTENSIONS):
                    continue
                match = pattern.search(entry)
                if match is None:
                    problems.append(f"{label}/{entry}: speaker_pattern {speaker_pattern!r} does not match")
                else:
                    found.append((os.path.join(label_dir, entry), label, match["speaker"]))
    if problems:
        raise CorpusError(f"{data_dir}: {len(problems)} problem(s):\n{_problem_list(problems)}")
    if not found:
        raise CorpusError(f"{data_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the '{layout}' layout")
    names = _resolve_classes({label for _, label, _ in found}, class_names, data_dir)
    records = [Record(path, names.index(label), speaker) for path, label, speaker in found]
    return _finish(os.path.basename(data_dir.rstrip(os.sep)), records, names, check_files)


def from_csv(path, class_names=None, check_files=True):
    """A corpus listed in a CSV file with the columns `path,label,speaker`.

    Relative paths are relative to the CSV file's folder.

    Args:
        path: the CSV file.
        class_names: optional allowed labels in class-index order; any other
            label is an error. Defaults to the sorted distinct labels.
        check_files: bool. Check every file exists and is readable audio.

    Returns:
        A `Corpus` named after the CSV file.

    Example:

    >>> corpus = from_csv("corpus.csv")  # doctest: +SKIP
    """
    if not os.path.isfile(path):
        raise CorpusError(f"Corpus CSV not found: {path!r}")
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "speaker"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(
                f"{path}: missing column(s) {sorted(missing)}; expected a header with path,label,speaker. "
                f"Received columns: {reader.fieldnames}"
            )
        rows, problems = [], []
        for line, row in enumerate(reader, start=2):
            values = {key: (row.get(key) or "").strip() for key in ("path", "label", "speaker")}
            empty = [key for key, value in values.items() if not value]
            if empty:
                problems.append(f"line {line}: empty {', '.join(empty)}")
                continue
            rows.append((os.path.join(base, values["path"]), values["label"], values["speaker"]))
    if problems:
        raise CorpusError(f"{path}: {len(problems)} bad row(s):\n{_problem_list(problems)}")
    if not rows:
        raise CorpusError(f"{path}: no rows")
    names = _resolve_classes({label for _, label, _ in rows}, class_names, path)
    records = [Record(file, names.index(label), speaker) for file, label, speaker in rows]
    return _finish(os.path.splitext(os.path.basename(path))[0], records, names, check_files)


def synthetic(out_dir, n_speakers=4, per_class=8, emotions="WLEAFTN", seed=0, check_files=True):
    """Writes (if needed) and reads the synthetic speech-like corpus.

    See `tf_pipeline.synthetic.write_corpus` for how the audio is made. Files
    use the EMO-DB naming, so the result is read with `emodb` and named
    "synthetic".

    Example:

    >>> corpus = synthetic("/tmp/keras_ser_synthetic", n_speakers=4, per_class=6)
    >>> len(corpus)
    168
    """
    from tf_pipeline.synthetic import write_corpus

    write_corpus(out_dir, n_speakers=n_speakers, per_class=per_class, emotions=emotions, seed=seed)
    corpus = emodb(out_dir, check_files=check_files)
    used = [list(EMODB_EMOTIONS).index(letter) for letter in emotions]
    remap = {old: new for new, old in enumerate(sorted(used))}
    names = [list(EMODB_EMOTIONS.values())[old] for old in sorted(used)]
    records = tuple(dataclasses.replace(r, label=remap[r.label]) for r in corpus.records)
    return Corpus(name="synthetic", records=records, class_names=tuple(names))


def _emotion_map(corpus, emotion_map):
    if emotion_map is not None:
        return dict(emotion_map)
    if corpus.name not in EMOTION_MAPS:
        raise CorpusError(
            f"No emotion map for corpus {corpus.name!r}; maps exist for {sorted(EMOTION_MAPS)}. "
            "Pass emotion_map={native class name: shared class name} for another corpus."
        )
    return EMOTION_MAPS[corpus.name]


def to_shared_vocabulary(corpus, emotion_map=None):
    """The corpus with its classes renamed to `SHARED_EMOTIONS` names.

    Args:
        corpus: a `Corpus`.
        emotion_map: optional dict `native class name -> shared name`;
            defaults to `EMOTION_MAPS[corpus.name]`.

    Returns:
        A `Corpus` of the same records and name whose classes are the shared
        names its map reaches, in the order of `SHARED_EMOTIONS`. A class
        already called by the shared name its map gives (as `select_classes`
        leaves a class asked for by that name, e.g. EMOVO's "joy" as
        "happiness") keeps that name.

    Raises:
        CorpusError: no map for the corpus, a class the map lacks, or a map
            value that is not a shared name.

    Example:

    >>> corpus = to_shared_vocabulary(emovo("/data/emovo"))   # doctest: +SKIP
    >>> corpus.class_names                                   # doctest: +SKIP
    ('anger', 'happiness', 'sadness', 'neutral', 'fear', 'disgust', 'surprise')
    """
    mapping = dict(_emotion_map(corpus, emotion_map))
    reached = set(mapping.values())
    # A class already called by the shared name its map gives it (`select_classes` asked by that name) keeps it.
    mapping.update({name: name for name in corpus.class_names if name not in mapping and name in reached})
    missing = [name for name in corpus.class_names if name not in mapping]
    if missing:
        raise CorpusError(f"{corpus.name}: the emotion map has no shared name for class(es) {missing}; "
                          f"it maps {sorted(mapping)}")
    unknown = sorted({mapping[name] for name in corpus.class_names} - set(SHARED_EMOTIONS))
    if unknown:
        raise CorpusError(f"{corpus.name}: the emotion map gives {unknown}, which are not shared names; "
                          f"expected names from {list(SHARED_EMOTIONS)}")
    used = {mapping[name] for name in corpus.class_names}
    names = tuple(name for name in SHARED_EMOTIONS if name in used)
    relabel = [names.index(mapping[name]) for name in corpus.class_names]
    records = tuple(dataclasses.replace(record, label=relabel[record.label]) for record in corpus.records)
    return dataclasses.replace(corpus, records=records, class_names=names)


def combine(corpora, emotion_maps=None):
    """Several corpora as one, under the shared emotion names.

    Every corpus is mapped with `to_shared_vocabulary`, and every speaker is
    named after its corpus, `<corpus>.<speaker>` (e.g. `emodb.03`,
    `ravdess.01`, `emovo.f1`), so that speakers never collide and each
    record's corpus is known (`Corpus.corpus_ids`). The classes are every
    shared name that one of the corpora has, in the order of
    `SHARED_EMOTIONS`; a corpus may lack some (EMO-DB has no "calm").

    Args:
        corpora: sequence of `Corpus`, with distinct names free of "." and "+".
        emotion_maps: optional dict `corpus name -> {native: shared}` for
            corpora without an entry in `EMOTION_MAPS` (or to override it).

    Returns:
        A `Corpus` named `"+".join(names)` (e.g. "emodb+ravdess+emovo")
        whose `corpora` are the names, in the order given.

    Raises:
        CorpusError: no corpus, a repeated or unusable name, an already
            combined corpus, or a class without a shared name.

    Example:

    >>> both = combine([emodb("/data/emodb/wav"), ravdess("/data/ravdess")])   # doctest: +SKIP
    >>> both.name, both.speakers[0], both.speakers[-1]                          # doctest: +SKIP
    ('emodb+ravdess', 'emodb.03', 'ravdess.24')
    """
    corpora = list(corpora)
    if not corpora:
        raise CorpusError("combine needs at least one corpus. Received: an empty list")
    names = [corpus.name for corpus in corpora]
    problems = [f"{name!r} appears {names.count(name)} times" for name in sorted(set(names)) if names.count(name) > 1]
    problems += [f"{name!r} holds '.' or '+' (speakers are named <corpus>.<speaker>)"
                 for name in names if "." in name or "+" in name]
    problems += [f"{corpus.name!r} is already combined from {list(corpus.corpora)}; combine its parts instead"
                 for corpus in corpora if corpus.corpora]
    if problems:
        raise CorpusError(f"Cannot combine the corpora {names}:\n{_problem_list(problems)}")
    emotion_maps = emotion_maps or {}
    shared = [to_shared_vocabulary(corpus, emotion_maps.get(corpus.name)) for corpus in corpora]
    used = {name for corpus in shared for name in corpus.class_names}
    class_names = tuple(name for name in SHARED_EMOTIONS if name in used)
    records, left_out = [], collections.Counter()
    for corpus in shared:
        relabel = [class_names.index(name) for name in corpus.class_names]
        records += [Record(record.path, relabel[record.label], f"{corpus.name}.{record.speaker}")
                    for record in corpus.records]
        left_out.update(dict(corpus.left_out))
    return Corpus(name="+".join(names), records=tuple(records), class_names=class_names, corpora=tuple(names),
                  left_out=tuple(left_out.items()))


def select_classes(corpus, classes, emotion_map=None):
    """The corpus with only some of its classes, in the order given.

    A class is asked for by the corpus's own name for it or, through the
    corpus's emotion map, by its shared name (`SHARED_EMOTIONS`): on RAVDESS
    "angry" and "anger" both select the angry files. The classes of the
    result are the names as given. A combined corpus's own names are the
    shared ones. The files of every other class are left out and counted in
    `Corpus.left_out` (which `Corpus.summary` prints).

    Args:
        corpus: a `Corpus`.
        classes: sequence of str, the classes to keep, in class-index order.
        emotion_map: optional dict `native -> shared`; defaults to
            `EMOTION_MAPS[corpus.name]` where there is one (none for a
            combined, folder or CSV corpus: own names only).

    Returns:
        A `Corpus` with `class_names == tuple(classes)`.

    Raises:
        CorpusError: no class, a repeated class, an unknown class (listed,
            with the names available), two names for the same class, or no
            file left.

    Example:

    >>> corpus = select_classes(emodb("/data/emodb/wav"), ["anger", "happiness", "sadness", "neutral"])  # doctest: +SKIP
    >>> len(corpus), corpus.left_out                  # doctest: +SKIP
    (339, (('boredom', 81), ('disgust', 46), ('fear', 69)))
    """
    classes = [str(name).strip() for name in classes]
    if not [name for name in classes if name]:
        raise CorpusError(f"{corpus.name}: no class to keep. Received: {classes}; expected names from "
                          f"{list(corpus.class_names)}")
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        raise CorpusError(f"{corpus.name}: class(es) {repeated} asked for more than once. Received: {classes}")
    if emotion_map is None:
        emotion_map = EMOTION_MAPS.get(corpus.name, {})
    native = list(corpus.class_names)
    chosen, unknown = {}, []  # native index -> new index
    for new, name in enumerate(classes):
        indices = [native.index(name)] if name in native else [
            index for index, own in enumerate(native) if emotion_map.get(own) == name]
        if not indices:
            unknown.append(name)
        for index in indices:
            if index in chosen:
                raise CorpusError(f"{corpus.name}: {classes[chosen[index]]!r} and {name!r} both name its class "
                                  f"{native[index]!r}; ask for it once")
            chosen[index] = new
    if unknown:
        shared = [name for name in SHARED_EMOTIONS
                  if name not in native and any(emotion_map.get(own) == name for own in native)]
        available = f"{native}" + (f", or by their shared names {shared}" if shared else "")
        raise CorpusError(f"{corpus.name}: unknown class(es) {unknown}; its classes are {available}")
    records = tuple(dataclasses.replace(record, label=chosen[record.label])
                    for record in corpus.records if record.label in chosen)
    if not records:
        raise CorpusError(f"{corpus.name}: no files of the classes {classes}")
    counts = corpus.counts()
    left_out = collections.Counter(dict(corpus.left_out))
    left_out.update({name: counts[name] for index, name in enumerate(native) if index not in chosen and counts[name]})
    return dataclasses.replace(corpus, records=records, class_names=tuple(classes), left_out=tuple(left_out.items()))


def read(names, data_dirs, classes=None, readers=None):
    """One corpus, or several combined, optionally with only some classes.

    One name reads that corpus with its own class names (as its reader
    alone would); several are read in turn and joined by `combine` (shared
    class names, speakers `<corpus>.<speaker>`). Then `select_classes`, when
    `classes` is given.

    Args:
        names: str, a reader name of `READERS` or a comma-separated list of
            them (e.g. "emodb,ravdess,emovo"), or a list of names.
        data_dirs: str, the folder of each corpus, comma-separated in the
            same order, or a list of them.
        classes: optional sequence of class names to keep (`select_classes`).
        readers: optional dict `name -> callable(data_dir) -> Corpus`;
            defaults to `READERS`.

    Returns:
        A `Corpus`.

    Raises:
        CorpusError: an unknown reader name, a count of folders that does
            not match, or anything the readers, `combine` or
            `select_classes` raise.

    Example:

    >>> corpus = read("emodb,ravdess", "/data/emodb/wav,/data/ravdess",
    ...               classes=["anger", "happiness", "sadness", "neutral"])   # doctest: +SKIP
    """
    readers = READERS if readers is None else readers
    names = [name.strip() for name in (names.split(",") if isinstance(names, str) else names)]
    if isinstance(data_dirs, str):
        data_dirs = data_dirs.split(",") if len(names) > 1 else [data_dirs]
    data_dirs = [None if data_dir is None else data_dir.strip() for data_dir in (data_dirs or [None])]
    unknown = [name for name in names if name not in readers]
    if unknown:
        raise CorpusError(f"Unknown corpus name(s) {unknown}; the readers are {sorted(readers)}")
    if len(data_dirs) != len(names):
        raise CorpusError(f"{len(names)} corpora ({', '.join(names)}) but {len(data_dirs)} folder(s) "
                          f"({', '.join(str(d) for d in data_dirs)}); give one folder per corpus, in the same order")
    corpora = [readers[name](data_dir) for name, data_dir in zip(names, data_dirs)]
    corpus = corpora[0] if len(corpora) == 1 else combine(corpora)
    return corpus if classes is None else select_classes(corpus, classes)


READERS = {
    "emodb": emodb,
    "casia": casia,
    "ravdess": ravdess,
    "emovo": emovo,
    "dir": from_directory,
    "csv": from_csv,
    "synthetic": synthetic,
}
