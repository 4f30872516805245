"""Writes examples/quickstart.ipynb (without outputs) from the cells below.

The notebook is generated: edit the cells here and run

    .venv/bin/python examples/make_quickstart.py

then commit both files. tests/test_notebook.py checks that the committed
notebook equals what this script writes, that it holds no outputs, and
executes it.
"""

import os

import nbformat

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.ipynb")

CELLS = [
    ("markdown", """\
# keras-ser quickstart

From audio files to a trained speech-emotion model, its scores, and an answer from a model server:

1. read a corpus (the synthetic one embedded in keras-ser, or a folder of your own),
2. split it leave-one-speaker-out, so the model is tested on a voice it never heard,
3. build and train a small CNN+SRU with `keras_ser.build_model(n_segments=3, ...)`,
4. score it on the test speaker (WA, UA, confusion matrix),
5. try the shipped pretrained model `encoder_stats_emodb`,
6. export the trained model for TensorFlow Serving,
7. start the development server and ask it over gRPC.

It runs in a couple of minutes on two CPU cores. No download is needed."""),
    ("markdown", """\
## Settings

`DATA_DIR = None` uses the synthetic corpus: speech-like tones for 3 speakers and 4 emotions, written to disk by
keras-ser itself. To use your own recordings instead, set `DATA_DIR` to a folder laid out as
`<speaker>/<label>/<file>.wav`, for example `my_corpus/anna/anger/take1.wav`: the folder names give the speakers and
the emotion labels.

`WORK_DIR = None` puts everything this notebook writes (the corpus copy, the exported model) into a new temporary
folder.

When TensorFlow starts it prints a few lines of its own on stderr (oneDNN, "Could not find cuda drivers" on a
machine without a GPU); they are expected."""),
    ("code", """\
DATA_DIR = None  # None: the embedded synthetic corpus; or a folder in the <speaker>/<label>/<file> layout
WORK_DIR = None  # None: a new temporary folder
EPOCHS = 20"""),
    ("code", """\
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines after start-up: errors only

import logging
import shutil
import tempfile
import time

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_ser
import tf_pipeline

logging.getLogger("tensorflow").setLevel(logging.ERROR)
started = time.time()
keras.utils.set_random_seed(0)
WORK_DIR = WORK_DIR or tempfile.mkdtemp(prefix="keras_ser_quickstart_")
print(f"Keras {keras.__version__} on {keras.backend.backend()}; writing to {WORK_DIR}")"""),
    ("markdown", """\
## 1. The corpus

With `DATA_DIR = None`, `tf_pipeline.corpora.synthetic` writes the synthetic corpus (3 speakers x 4 emotions x 4
utterances), and the next cell copies it into the `<speaker>/<label>/<file>` layout, the same layout a folder of your
own would have. From there on both cases are the same: `tf_pipeline.corpora.from_directory` reads the folder into a
`Corpus` (files, labels, speakers) and checks that every file is readable audio. A CSV file with the columns
`path,label,speaker` works too: `tf_pipeline.corpora.from_csv("corpus.csv")`."""),
    ("code", """\
if DATA_DIR is None:
    synthetic = tf_pipeline.corpora.synthetic(
        os.path.join(WORK_DIR, "synthetic"), n_speakers=3, per_class=4, emotions="WTFN")
    DATA_DIR = os.path.join(WORK_DIR, "corpus")
    for record in synthetic.records:
        folder = os.path.join(DATA_DIR, record.speaker, synthetic.class_names[record.label])
        os.makedirs(folder, exist_ok=True)
        shutil.copy(record.path, folder)

corpus = tf_pipeline.corpora.from_directory(DATA_DIR)
print(corpus.summary())
print("first record:", corpus.records[0])"""),
    ("markdown", """\
## 2. Leave-one-speaker-out folds

Emotion models easily learn *who* is speaking instead of *how* they feel. To measure honestly, each fold keeps one
speaker out: the model trains on the others and is tested on that one. Here we run the first fold only; the
`keras-ser loso` command runs all of them (and resumes if stopped)."""),
    ("code", """\
folds = tf_pipeline.loso_folds(corpus)
for f in folds:
    print(f"test speaker {f.test_speaker}: {len(f.train_indices)} training utterances, "
          f"{len(f.test_indices)} test utterances")
fold = folds[0]
print(f"\\nThis notebook uses the fold of test speaker {fold.test_speaker}.")"""),
    ("markdown", """\
## 3. Build and train a model

`keras_ser.build_model(n_segments=3)` is the network of Jiang, Fu & Tao (2019): each utterance becomes a log-Mel
image (with its deltas), cut into 3 segments; an AlexNet looks at each segment and a Simple Recurrent Unit (SRU)
reads the 3 results in order. At the paper's size it has 107 M parameters; here we shrink AlexNet and the images
(67x67 instead of 227x227) so that it trains in seconds on a CPU. The model stores the class names, so its
predictions come back with names."""),
    ("code", """\
model = keras_ser.build_model(
    "cnn_sru",
    n_segments=3,
    num_classes=corpus.num_classes,
    class_names=corpus.class_names,
    image_size=67,
    sru_units=16,
    backbone_kwargs={"filters": [8, 16, 16, 16, 16], "fc_units": 32},
)
print(f"{model.count_params():,} parameters; input {model.input.shape}; classes {model.class_names}")"""),
    ("markdown", """\
The model standardises its input in its first layer with per-channel statistics (mean and spread of the log-Mel,
delta and delta-delta values). They must come from the training speakers only, never from the test speaker:"""),
    ("code", """\
stats = tf_pipeline.corpus_channel_stats(corpus, fold.train_indices)
keras_ser.set_channel_stats(model, stats.mean, stats.std)
print("channel means:", np.round(stats.mean, 3), " standard deviations:", np.round(stats.std, 3))"""),
    ("markdown", """\
`model.preprocessor` turns audio into exactly what this model takes (the same code runs later inside the exported
model), and `model.preprocessor.dataset` makes a `tf.data` pipeline of `(segments, label)` batches from corpus
records. The training set is shuffled; the test set keeps the order of `fold.test_indices`.

`build_model` already compiled the model (Adam, learning rate 1e-4, the metrics WA and UA). This tiny model on a tiny
corpus learns faster with 1e-3, so we compile once more; `jit_compile=False` skips XLA, which is slower on CPUs."""),
    ("code", """\
train_ds = model.preprocessor.dataset(corpus, fold.train_indices, batch_size=8, training=True)
test_ds = model.preprocessor.dataset(corpus, fold.test_indices, batch_size=16)

model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), jit_compile=False)
history = model.fit(train_ds, epochs=EPOCHS, verbose=2)"""),
    ("markdown", """\
## 4. Scores on the test speaker

Two numbers are usual in speech emotion recognition: **WA** (weighted accuracy), the share of utterances labelled
right, and **UA** (unweighted accuracy), the recall of each emotion averaged over the emotions, so a rare emotion
counts as much as a frequent one. The confusion matrix shows which emotions are taken for which."""),
    ("code", """\
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

probabilities = model.predict(test_ds, verbose=0)
y_true = corpus.labels[fold.test_indices]
y_pred = probabilities.argmax(axis=1)
wa = accuracy_score(y_true, y_pred)
ua = balanced_accuracy_score(y_true, y_pred)
print(f"test speaker {fold.test_speaker}: WA {100 * wa:.1f} %, UA {100 * ua:.1f} % "
      f"({len(y_true)} utterances; chance is {100 / corpus.num_classes:.0f} %)")"""),
    ("code", """\
matrix = confusion_matrix(y_true, y_pred, labels=range(corpus.num_classes))
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.imshow(matrix, cmap="Blues")
ax.set_xticks(range(corpus.num_classes), corpus.class_names, rotation=45, ha="right")
ax.set_yticks(range(corpus.num_classes), corpus.class_names)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title(f"test speaker {fold.test_speaker}")
for (row, column), count in np.ndenumerate(matrix):
    ax.text(column, row, count, ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
fig.tight_layout()
plt.show()"""),
    ("markdown", """\
## 5. The shipped pretrained model

keras-ser ships one trained model, `encoder_stats_emodb`: a pretrained speech encoder (GE2E) with a logistic-regression
head trained on all ten speakers of EMO-DB (7 emotions). It needs no training and no download.
It expects real speech: on the synthetic tones of this notebook its answer means nothing, but the calls are the same
for your recordings."""),
    ("code", """\
from keras_ser.presets import preset_metadata

preset = keras_ser.from_preset("encoder_stats_emodb")
loso = preset_metadata("encoder_stats_emodb")["loso"]
print(keras_ser.list_presets()["encoder_stats_emodb"])
print(f"leave-one-speaker-out on EMO-DB: WA {loso['wa_pooled']} %, UA {loso['ua_pooled']} % ({len(loso['folds'])} folds)")
print("classes:", preset.class_names)"""),
    ("code", """\
path = corpus.records[fold.test_indices[0]].path
waveform = tf_pipeline.load_audio(path, preset.feature_config)  # mono float32 at 16 kHz
preset_probabilities = preset.predict(preset.preprocessor(waveform), verbose=0)[0]
print(os.path.basename(path))
for name, p in sorted(zip(preset.class_names, preset_probabilities), key=lambda item: -item[1]):
    print(f"  {name:10s} {p:.3f}")"""),
    ("markdown", """\
## 6. Export for TensorFlow Serving

`saved_models.export` writes a versioned SavedModel, `<export_root>/ser/1/`, which the official
`tensorflow/serving` image runs. The feature computation is inside it, so a client sends WAV bytes (signature
`serve_wav`) or waveforms (`serving_default`) and gets probabilities and class names back. On the command line:
`keras-ser export --model=model.keras --export_root=exports --name=ser`."""),
    ("code", """\
from saved_models import export

export_root = tempfile.mkdtemp(prefix="exports_", dir=WORK_DIR)
version_dir = export(model, export_root, "ser")
print(version_dir)
print(sorted(os.listdir(version_dir)))"""),
    ("markdown", """\
## 7. Ask a server over gRPC

`serving.server.DevServer` is keras-ser's development server: it speaks TensorFlow Serving's gRPC and REST protocols,
for machines without TF Serving. We start it inside this notebook on a free port (`port=0`); from a terminal the same
server is `keras-ser serve-local --model_base_path=<export_root>/ser --model_name=ser --port=0`, which prints its
port. `serving.client.GrpcClient` works the same against the real TF Serving."""),
    ("code", """\
from serving.client import GrpcClient
from serving.server import DevServer

server = DevServer.for_model("ser", os.path.join(export_root, "ser"), port=0, rest_api_port=None,
                             poll_seconds=0).start()
print(f"gRPC server at {server.grpc_address}")"""),
    ("code", """\
try:
    with GrpcClient("127.0.0.1", server.grpc_port, model_name="ser") as client:
        print("model status:", client.status()["model_version_status"][0]["state"])
        answer = client.predict_files([path])[0]
finally:
    server.stop()

true_label = corpus.class_names[corpus.labels[fold.test_indices[0]]]
print(f"server answer: {os.path.basename(answer['file'])} -> {answer['label']} "
      f"(true label {true_label}, model version {answer['model_version']})")
for name, p in answer["probabilities"].items():
    print(f"  {name:10s} {p:.3f}")
difference = np.abs(np.array(list(answer["probabilities"].values())) - probabilities[0]).max()
print(f"largest difference to model.predict in this notebook: {difference:.1e}")"""),
    ("markdown", """\
## Next steps

- All folds, with reports and a confusion plot per run: `keras-ser loso --corpus=dir --data_dir=<DATA_DIR> ...`
  (`keras-ser loso --help`).
- The paper's full-size network: `keras_ser.build_model(n_segments=3)` with its defaults (a GPU helps).
- Serving in production: `docs/serving.md` (TF Serving on a GPU host, REST, batching).

The files this notebook wrote are in `WORK_DIR`; delete the folder when you are done."""),
    ("code", """\
print(f"notebook finished in {time.time() - started:.0f} s; files in {WORK_DIR}")"""),
]


def build():
    """The notebook, as an `nbformat.NotebookNode` without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, (kind, source) in enumerate(CELLS, start=1):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(source, id=f"cell-{number:02d}"))
    nbformat.validate(notebook)
    return notebook


def main():
    with open(PATH, "w", encoding="utf-8") as handle:
        nbformat.write(build(), handle)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
