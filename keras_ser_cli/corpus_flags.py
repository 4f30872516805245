"""Flags that select a corpus, shared by the subcommands that read one."""

import functools
import os

from keras_ser_cli.usage import UsageError

CORPORA = ("emodb", "casia", "ravdess", "emovo", "dir", "csv", "synthetic")
# Readers whose classes have a map onto the shared emotion names: these can be combined.
COMBINABLE = ("emodb", "casia", "ravdess", "emovo", "synthetic")
DEFAULT_SYNTHETIC_DIR = os.path.join(os.path.expanduser("~"), ".cache", "keras_ser", "synthetic")


def _corpus_names(value):
    return [name.strip() for name in str(value).split(",")]


def _valid_corpus(value):
    if value is None:  # no default (evaluate): the subcommand asks for it
        return True
    names = _corpus_names(value)
    if len(names) == 1:
        return names[0] in CORPORA
    return all(name in COMBINABLE for name in names) and len(set(names)) == len(names)


def define(flag_values, default_corpus="synthetic"):
    from absl import flags

    flags.DEFINE_string("corpus", default_corpus,
                        "Corpus reader: emodb (EMO-DB wav folder), casia (<speaker>/<emotion>/<id>.wav), ravdess "
                        "(Actor_NN/03-01-<emotion>-...-<actor>.wav or .flac), emovo (<speaker>/<emotion code>-"
                        "<speaker>-<sentence>.wav or .flac), dir (<speaker>/<label>/<file>), csv (a CSV with "
                        "path,label,speaker) or synthetic (the embedded speech-like corpus, written on first use). "
                        "A comma-separated list of emodb, casia, ravdess, emovo, synthetic combines them under the "
                        "shared emotion names (anger, happiness, sadness, neutral, fear, disgust, surprise, boredom, "
                        "calm; tf_pipeline.emotion_vocabulary), speakers named <corpus>.<speaker>, e.g. "
                        "--corpus=emodb,ravdess,emovo.", flag_values=flag_values)
    flags.register_validator(
        "corpus", _valid_corpus,
        message=f"value should be one of {', '.join(CORPORA)}, or a comma-separated list of distinct names from "
                f"{', '.join(COMBINABLE)}", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None,
                        "Corpus folder (or CSV file for --corpus=csv). For --corpus=synthetic, where the "
                        f"corpus is written; default {DEFAULT_SYNTHETIC_DIR}. With several corpora, one folder per "
                        "corpus, comma-separated in the same order (e.g. --data_dir=/data/emodb/wav,/data/ravdess; "
                        "an empty entry for synthetic takes its default).", flag_values=flag_values)
    flags.DEFINE_list("classes", None,
                      "Classes to keep, comma-separated, in class-index order (default: every class), e.g. "
                      "--classes=anger,happiness,sadness,neutral. One corpus takes its own class names or the "
                      "shared names they map to (RAVDESS angry or anger); combined corpora take the shared names. "
                      "The files of other classes are left out and counted in the corpus summary.",
                      flag_values=flag_values)
    flags.DEFINE_integer("synthetic_speakers", 4, "Speakers of the synthetic corpus.", lower_bound=2,
                         upper_bound=99, flag_values=flag_values)
    flags.DEFINE_integer("synthetic_per_class", 8, "Utterances per speaker and emotion of the synthetic corpus.",
                         lower_bound=1, upper_bound=99, flag_values=flag_values)
    flags.DEFINE_string("synthetic_emotions", "WTFN",
                        "EMO-DB letters of the synthetic corpus's emotions (W anger, L boredom, E disgust, "
                        "A fear, F happiness, T sadness, N neutral).", flag_values=flag_values)


def load(flag_values):
    """Reads the corpus (or combines the corpora) the flags name, keeping --classes.

    A bad folder, a count of --data_dir folders that differs from the count
    of --corpus names, or an unknown class is a UsageError (one line).
    """
    from tf_pipeline import corpora

    names, data_dir = _corpus_names(flag_values.corpus), flag_values.data_dir
    if len(names) == 1:
        data_dirs = [data_dir]
    else:
        data_dirs = data_dir.split(",") if data_dir else []
        if len(data_dirs) != len(names):
            raise UsageError(f"--corpus names {len(names)} corpora ({', '.join(names)}) but --data_dir has "
                             f"{len(data_dirs)} folder(s); give one folder per corpus, comma-separated in the "
                             "same order")
    for name, folder in zip(names, data_dirs):
        if name != "synthetic" and not (folder or "").strip():
            raise UsageError(f"--data_dir is required with --corpus={name}" if len(names) == 1 else
                             f"--data_dir has an empty folder for {name} (--corpus={flag_values.corpus})")
    synthetic = functools.partial(_synthetic, flag_values)
    classes = None if flag_values.classes is None else [name.strip() for name in flag_values.classes]
    try:
        return corpora.read(names, data_dirs, classes=classes, readers={**corpora.READERS, "synthetic": synthetic})
    except (corpora.CorpusError, ValueError) as error:
        raise UsageError(str(error).replace("\n", " ")) from None


def _synthetic(flag_values, data_dir):
    from tf_pipeline import corpora

    return corpora.synthetic(data_dir or DEFAULT_SYNTHETIC_DIR, n_speakers=flag_values.synthetic_speakers,
                             per_class=flag_values.synthetic_per_class, emotions=flag_values.synthetic_emotions)
