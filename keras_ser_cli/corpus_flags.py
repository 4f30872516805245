"""Flags that select a corpus, shared by the subcommands that read one."""

import os

from keras_ser_cli.main import UsageError

CORPORA = ("emodb", "casia", "dir", "csv", "synthetic")
DEFAULT_SYNTHETIC_DIR = os.path.join(os.path.expanduser("~"), ".cache", "keras_ser", "synthetic")


def define(flag_values, default_corpus="synthetic"):
    from absl import flags

    flags.DEFINE_enum("corpus", default_corpus, CORPORA,
                      "Corpus reader: emodb (EMO-DB wav folder), casia (<speaker>/<emotion>/<id>.wav), "
                      "dir (<speaker>/<label>/<file>), csv (a CSV with path,label,speaker) or synthetic "
                      "(the embedded speech-like corpus, written on first use).", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None,
                        "Corpus folder (or CSV file for --corpus=csv). For --corpus=synthetic, where the "
                        f"corpus is written; default {DEFAULT_SYNTHETIC_DIR}.", flag_values=flag_values)
    flags.DEFINE_integer("synthetic_speakers", 4, "Speakers of the synthetic corpus.", lower_bound=2,
                         upper_bound=99, flag_values=flag_values)
    flags.DEFINE_integer("synthetic_per_class", 8, "Utterances per speaker and emotion of the synthetic corpus.",
                         lower_bound=1, upper_bound=99, flag_values=flag_values)
    flags.DEFINE_string("synthetic_emotions", "WTFN",
                        "EMO-DB letters of the synthetic corpus's emotions (W anger, L boredom, E disgust, "
                        "A fear, F happiness, T sadness, N neutral).", flag_values=flag_values)


def load(flag_values):
    """Reads the corpus the flags name; a bad folder is a UsageError (one line)."""
    from tf_pipeline import corpora

    name, data_dir = flag_values.corpus, flag_values.data_dir
    if name != "synthetic" and not data_dir:
        raise UsageError(f"--data_dir is required with --corpus={name}")
    try:
        if name == "synthetic":
            return corpora.synthetic(data_dir or DEFAULT_SYNTHETIC_DIR, n_speakers=flag_values.synthetic_speakers,
                                     per_class=flag_values.synthetic_per_class,
                                     emotions=flag_values.synthetic_emotions)
        return corpora.READERS[name](data_dir)
    except (corpora.CorpusError, ValueError) as error:
        raise UsageError(str(error).replace("\n", " ")) from None
