"""Corpus readers: EMO-DB, CASIA, a folder per label, a CSV, and the synthetic corpus.

Every reader returns a `Corpus`: records (path, label index, speaker), the
class names and the speakers. Readers never return a silently smaller
corpus: a missing folder, no audio, an unknown label, a file name that does
not follow the layout or an unreadable file is a `CorpusError` that lists
what was wrong.
"""

import collections
import csv
import dataclasses
import os
import re

import numpy as np

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
        name: str, e.g. "emodb".
        records: tuple of `Record`.
        class_names: tuple of str; `Record.label` indexes it.

    Example:

    >>> corpus = emodb("/data/emodb/wav")     # doctest: +SKIP
    >>> len(corpus), corpus.speakers[:3]      # doctest: +SKIP
    (535, ('03', '08', '09'))
    """

    name: str
    records: tuple
    class_names: tuple

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
        return (
            f"{self.name}: {len(self)} utterances, {len(self.speakers)} speakers "
            f"({', '.join(self.speakers)}), {self.num_classes} classes: {counts}"
        )


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


READERS = {
    "emodb": emodb,
    "casia": casia,
    "dir": from_directory,
    "csv": from_csv,
    "synthetic": synthetic,
}
