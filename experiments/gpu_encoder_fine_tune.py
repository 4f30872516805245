#!/usr/bin/env python
"""Leave-one-corpus-out fine-tuning of the GE2E encoder on a GPU, every setting chosen on the training corpora.

The `probe` recipe of `encoder_stats` can train the encoder's top LSTM
layers after the regression (`--fine_tune=k`), but it has no validation
speaker to choose `k`, the learning rate or the number of epochs on, and on
a few CPU cores one setting of one leave-one-corpus-out run takes 13
minutes. This script runs a grid of settings on one GPU and chooses among
them the way the probe chooses its `C`: by leaving one *training* corpus
out. For each test corpus T (the others are the training corpora A and B):

1. inner runs: the probe (its `C` chosen on five groups of the training
   corpus's speakers), then every setting fine-tuned, on A alone, scored on
   B; and on B alone, scored on A;
2. the candidate with the best mean inner UA among the four shared emotions
   is chosen (the probe itself, "no fine-tuning", is one of them; ties go
   to the smaller change);
3. the outer run: the probe on A + B (its `C` by leaving A or B out, what
   `keras-ser loso --protocol=loco` does), then every setting fine-tuned on
   A + B, scored on T. The chosen candidate's figure is the result; the
   others are printed as exploration (each one's outer figure was seen, so
   none of them is a selection).

The probes are fitted where TensorFlow runs (step `prepare`, on the pooled
features of the runner's feature store), so that the GPU machine, which has
JAX but neither TensorFlow nor the corpora, only fine-tunes (step `run`).

Steps:

    # here (TensorFlow, the corpora, runs/cache): frames, labels and probes -> .gpu_data/loco_frames.npz
    .venv/bin/python experiments/gpu_encoder_fine_tune.py prepare \\
        --data_dir=/data/emodb/wav,/data/ravdess,/data/emovo --feature_cache=runs/cache
    # on the GPU machine (Keras on JAX, docs/gpu.md), or on a CPU with tiny settings first
    KERAS_BACKEND=jax python experiments/gpu_encoder_fine_tune.py run --data=.gpu_data/loco_frames.npz \\
        --out=runs/gpu_fine_tune

`run` writes `results.json` (every run's UA at every checkpoint, the
choices, the timings) and `results.md` (the tables) into `--out`, after
every training run, so that a run stopped by `--budget_s` or killed keeps
what it finished; the same command again (same data and settings) trains
only the runs that are missing.
"""

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = ("emodb", "ravdess", "emovo")
TRAIN_CLASSES = ("anger", "happiness", "sadness", "neutral", "fear", "disgust")
SCORED_CLASSES = ("anger", "happiness", "sadness", "neutral")
EVAL_LENGTH_STEP = 400  # scoring batches are padded to a multiple of this many frames
PAD_VALUE = -1.0  # keras_ser.layers.pooling.PAD_VALUE, not imported at the top: `run` picks Keras's backend first


# ----------------------------------------------------------------------------------------------------------------
# Training sets: which corpora train, how the probe chooses its C, and who scores them
# ----------------------------------------------------------------------------------------------------------------


def training_sets(corpora=CORPORA, tests=None):
    """Every training set of the nested protocol: `[{"key", "test", "train", "scored_on", "role"}]`.

    For each test corpus (`tests`, default all of `corpora`), two inner sets
    (one training corpus alone, scored on the other) and the outer set
    (both, scored on the test corpus).

    Example:

    >>> [s["key"] for s in training_sets(("a", "b", "c"))][:3]
    ['test=a/train=b', 'test=a/train=c', 'test=a/train=b+c']
    """
    sets = []
    for test in corpora if tests is None else tests:
        train = [name for name in corpora if name != test]
        for alone in train:
            other = [name for name in train if name != alone][0]
            sets.append({"key": f"test={test}/train={alone}", "test": test, "train": [alone], "scored_on": other,
                         "role": "inner"})
        sets.append({"key": f"test={test}/train={'+'.join(train)}", "test": test, "train": train, "scored_on": test,
                     "role": "outer"})
    return sets


def probe_groups(corpus_names, speakers, train_rows, groups_of_speakers=5):
    """Inner groups of a probe's `C`: the corpora when several train, else five groups of whole speakers.

    The runner's choices: under leave-one-corpus-out with two training
    corpora `C` is chosen by leaving one out; with one training corpus,
    on `groups_of_speakers` groups of its speakers (its
    `--inner_folds=speaker_groups`, sorted speakers dealt round-robin).
    """
    names = corpus_names[train_rows]
    if len(set(names)) > 1:
        return names
    ordered = sorted(set(speakers[train_rows]))
    count = min(groups_of_speakers, len(ordered))
    group = {speaker: i % count for i, speaker in enumerate(ordered)}
    return np.array([group[s] for s in speakers[train_rows]])


# ----------------------------------------------------------------------------------------------------------------
# prepare: TensorFlow side
# ----------------------------------------------------------------------------------------------------------------


def prepare(args):
    """Frames of every file, the probes of every training set and a few pooled features -> one `.npz`."""
    import tensorflow as tf

    from keras_ser.models.speech_encoders import MelFramesConfig
    from keras_ser.models.speech_encoders import mel_power
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig
    from tf_pipeline import corpora
    from tf_pipeline.config import FrontEndConfig

    start = time.time()
    corpus = corpora.read(",".join(CORPORA), args.data_dir, classes=list(TRAIN_CLASSES))
    print(corpus.summary())
    feature_config = MelFramesConfig(front_end=FrontEndConfig())
    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none", dropout=0.5)

    frames = []
    for batch, _ in mel_power.mel_frames_dataset(corpus, config=feature_config, batch_size=1, cache=False):
        frames.append(batch.numpy()[0].astype(np.float16))
        if len(frames) % 250 == 0:
            print(f"  frames of {len(frames)} / {len(corpus.records)} files ({time.time() - start:.0f} s)")
    lengths = np.array([len(f) for f in frames])
    print(f"frames: {lengths.sum():,} in all, per file median {np.median(lengths):.0f}, 95th percentile "
          f"{np.percentile(lengths, 95):.0f}, longest {lengths.max()}")

    pooled = frozen.corpus_features(corpus, config, feature_config, cache_dir=args.feature_cache, log=print)
    corpus_names = np.array([str(c) for c in corpus.corpus_ids])
    speakers = np.array([str(s) for s in corpus.speaker_ids])
    labels = np.asarray(corpus.labels)
    probes = {}
    for item in training_sets():
        rows = np.flatnonzero(np.isin(corpus_names, item["train"]))
        groups = probe_groups(corpus_names, speakers, rows)
        probes[item["key"]] = frozen.fit_probe(pooled[rows], labels[rows], groups, len(corpus.class_names), seed=0)
        print(f"probe {item['key']}: C={probes[item['key']]['C']} (inner UA "
              f"{max(probes[item['key']]['inner_ua'].values()):.3f}), {len(rows)} files")
    check_rows = np.linspace(0, len(labels) - 1, 16).astype(int)
    out = args.out
    save_frames(out, frames, labels, corpus_names, speakers, list(corpus.class_names), probes,
                check_rows=check_rows, check_pooled=pooled[check_rows],
                paths=[os.path.relpath(r.path, os.path.dirname(os.path.dirname(r.path))) for r in corpus.records],
                meta={"feature_config": feature_config.to_dict(), "tensorflow": tf.__version__,
                      "made_by": "experiments/gpu_encoder_fine_tune.py prepare", "summary": corpus.summary()})
    print(f"wrote {out}: {os.path.getsize(out) / 2**20:.1f} MiB in {time.time() - start:.0f} s")
    return 0


def save_frames(path, frames, labels, corpus_names, speakers, class_names, probes, check_rows, check_pooled,
                paths=None, meta=None):
    """Writes what `run` reads (`Data`) into one compressed `.npz`.

    Args:
        path: the `.npz` to write (its folder is made).
        frames: list of `[frames_i, n_mels]` arrays, one per file (stored float16, concatenated).
        labels: int array `[n]`, indices into `class_names`.
        corpus_names: str array `[n]`, each file's corpus (`CORPORA`).
        speakers: str array `[n]`.
        class_names: list of str (the trained classes; `SCORED_CLASSES` among them).
        probes: dict `training set key -> fit_probe result` for every key of `training_sets()`.
        check_rows: int array: files whose pooled features `run` checks its encoder against.
        check_pooled: float array `[len(check_rows), d]`: their pooled features where the probes were fitted.
        paths: optional list of str, each file's name (kept for the record).
        meta: optional dict of JSON values stored beside (`class_names` added).
    """
    arrays = {}
    for key, probe in probes.items():
        for name in ("mean", "variance", "kernel", "bias"):
            arrays[f"probe:{key}:{name}"] = np.asarray(probe[name], np.float32)
        arrays[f"probe:{key}:C"] = np.float64(probe["C"])
    lengths = np.array([len(f) for f in frames])
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(
        path, frames=np.concatenate(frames).astype(np.float16), offsets=np.concatenate([[0], np.cumsum(lengths)]),
        labels=np.asarray(labels), corpus_names=np.asarray(corpus_names), speakers=np.asarray(speakers),
        paths=np.array(paths if paths is not None else [""] * len(labels)), check_rows=np.asarray(check_rows),
        check_pooled=np.asarray(check_pooled, np.float32),
        meta=np.array(json.dumps({**(meta or {}), "class_names": list(class_names)})), **arrays)


# ----------------------------------------------------------------------------------------------------------------
# run: Keras on JAX (no TensorFlow)
# ----------------------------------------------------------------------------------------------------------------


class Data:
    """The `.npz` of `prepare`: frames per file, labels, corpora and probes."""

    def __init__(self, path):
        with np.load(path, allow_pickle=False) as f:
            self.arrays = {name: f[name] for name in f.files}
        self.meta = json.loads(str(self.arrays["meta"]))
        self.frames = self.arrays["frames"]
        self.offsets = self.arrays["offsets"]
        self.labels = self.arrays["labels"]
        self.corpus_names = self.arrays["corpus_names"]
        self.class_names = self.meta["class_names"]
        self.lengths = np.diff(self.offsets)

    def probe(self, key):
        """The probe `prepare` fitted on training set `key` (`training_sets`): mean, variance, kernel, bias, C."""
        return {name: self.arrays[f"probe:{key}:{name}"] for name in ("mean", "variance", "kernel", "bias", "C")}

    def rows(self, corpora):
        """Indices of the files of `corpora`."""
        return np.flatnonzero(np.isin(self.corpus_names, list(corpora)))

    def batch(self, rows, length, rng=None):
        """`[len(rows), length, n_mels]` float32: each file's frames, a random window of `length` when longer and
        `rng` is given (else its first `length`), padded with `PAD_VALUE`."""
        out = np.full((len(rows), length, self.frames.shape[1]), PAD_VALUE, np.float32)
        for i, row in enumerate(rows):
            start, size = self.offsets[row], self.lengths[row]
            skip = 0 if size <= length or rng is None else int(rng.integers(0, size - length + 1))
            take = min(size, length)
            out[i, :take] = self.frames[start + skip: start + skip + take]
        return out


def scored_ua(probabilities, labels, class_names, classes=SCORED_CLASSES):
    """UA among `classes`: files of other classes left out, arg-max among those classes' columns."""
    columns = [class_names.index(name) for name in classes]
    keep = np.isin(labels, columns)
    truth = [columns.index(label) for label in labels[keep]]
    return all_ua(probabilities[keep][:, columns], truth, len(columns))


def all_ua(probabilities, labels, num_classes):
    """UA (mean recall over the classes present in `labels`) of the arg-max of `probabilities`."""
    from keras_ser.training.scores import confusion_matrix
    from keras_ser.training.scores import scores_from_confusion

    return scores_from_confusion(confusion_matrix(labels, np.argmax(probabilities, axis=1), num_classes))[1]


class Trainer:
    """One compiled `EncoderStatsClassifier` per `fine_tune`, reset to the pretrained encoder and a probe per run."""

    def __init__(self, data, args):
        import keras

        from keras_ser.models.speech_encoders.encoder_stats_classifier import EncoderStatsClassifier
        from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder

        self.keras, self.data, self.args = keras, data, args
        self.models, self.initial = {}, {}
        weights = None if args.weights == "none" else args.weights

        def build(k):
            keras.utils.set_random_seed(args.seed)  # random weights (weights="none") the same for every k
            return EncoderStatsClassifier(speaker_encoder(weights, **json.loads(args.encoder_kwargs)),
                                          num_classes=len(data.class_names), fine_tune=k, dropout=args.dropout,
                                          class_names=data.class_names)

        self._build = build

    def model(self, k):
        """The compiled model with the top `k` LSTM layers trainable (built once; its initial weights kept)."""
        if k not in self.models:
            model = self._build(k)
            model.compile(optimizer=self.keras.optimizers.Adam(learning_rate=1e-4),
                          loss="sparse_categorical_crossentropy")
            self.models[k] = model
            # Every variable, the dropout's seed state too: each run starts the same, whichever ran before it.
            self.initial[k] = [self.keras.ops.convert_to_numpy(v) for v in model.variables]
        return self.models[k]

    def reset(self, k, probe, learning_rate, seed):
        """`model(k)` back to its initial weights with `probe` in its head, Adam's state zeroed, its rate set."""
        from keras_ser.training.frozen import set_probe_weights

        model = self.model(k)
        for variable, value in zip(model.variables, self.initial[k]):
            variable.assign(value)
        set_probe_weights(model, probe)
        if model.optimizer.built:
            for variable in model.optimizer.variables:
                variable.assign(np.zeros(variable.shape, variable.dtype))
        model.optimizer.learning_rate = learning_rate
        self.keras.utils.set_random_seed(seed)
        return model

    def predict(self, model, rows):
        """Probabilities of `rows`, whole utterances: shortest first, `eval_batch` at a time, each batch padded to
        a multiple of `EVAL_LENGTH_STEP` frames and to whole batches (a few shapes, each compiled once)."""
        size = self.args.eval_batch
        by_length = np.argsort(self.data.lengths[rows], kind="stable")
        order = rows[by_length]
        padded = np.concatenate([order, np.repeat(order[-1:], (-len(order)) % size)])
        out = np.zeros((len(padded), len(self.data.class_names)), np.float32)
        for i in range(0, len(padded), size):
            batch = padded[i:i + size]
            length = int(np.ceil(self.data.lengths[batch].max() / EVAL_LENGTH_STEP) * EVAL_LENGTH_STEP)
            out[i:i + size] = np.asarray(model.predict_on_batch(self.data.batch(batch, length)))
        probabilities = np.zeros((len(rows), out.shape[1]), np.float32)
        probabilities[by_length] = out[:len(rows)]  # back to the order of `rows`
        return probabilities

    def train_epoch(self, model, rows, rng):
        """One epoch over `rows` (shuffled by `rng`), `batch_size` files a step, each a random crop of `crop` frames."""
        order = rng.permutation(rows)
        size = self.args.batch_size
        whole = len(order) - len(order) % size  # the last partial batch sits out (each epoch shuffles anew): one shape
        for i in range(0, whole, size):
            batch = order[i:i + size]
            model.train_on_batch(self.data.batch(batch, self.args.crop, rng), self.data.labels[batch])


def select(inner_scores):
    """The candidate with the best mean inner UA; ties: the probe, then fewer epochs, lower rate, fewer layers.

    Args:
        inner_scores: dict `candidate name -> list of inner UAs`, where a name
            is `"probe"` or `"k=<k> lr=<lr> epochs=<e>"`.

    Example:

    >>> select({"probe": [0.5, 0.6], "k=1 lr=1e-05 epochs=2": [0.6, 0.5], "k=1 lr=1e-05 epochs=1": [0.7, 0.5]})
    'k=1 lr=1e-05 epochs=1'
    """
    def order(name):
        if name == "probe":
            return (0, 0.0, 0)
        parts = dict(part.split("=") for part in name.split())
        return (int(parts["epochs"]), float(parts["lr"]), int(parts["k"]))

    return max(inner_scores, key=lambda name: (np.mean(inner_scores[name]), tuple(-x for x in order(name))))


def candidate(k, lr, epochs):
    """A candidate's name, e.g. `k=1 lr=0.0001 epochs=2`."""
    return f"k={k} lr={lr:g} epochs={epochs}"


def finished_runs(path, results):
    """The `runs` of an earlier `results.json` at `path` made with the same data, settings and seed, or `{}`.

    What a run stopped by `--budget_s` (or killed) finished: `run` takes
    those fine-tuning runs' scores as they are and trains only the others.
    Another data file or other settings start from scratch (and say why).
    """
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        earlier = json.load(f)
    same = all(earlier.get(key) == results[key] for key in ("data_sha256", "settings", "seed"))
    if not same:
        print(f"{path}: made with other data or settings; starting again (it will be replaced)", flush=True)
        return {}
    return earlier.get("runs", {})


def markdown(results):
    """`results.md`: the chosen candidate per test corpus, then every candidate's inner and test UA."""
    lines = ["# Leave-one-corpus-out: the GE2E probe, then fine-tuning, every setting chosen on the training corpora",
             "", f"Command: `{results['command']}`", f"Device: {results['device']}; Keras {results['keras']}, "
             f"JAX {results.get('jax')}; {results['wall_s']:.0f} s.", "",
             "UA among the four shared emotions (six trained); inner = mean of the two inner runs (one training "
             "corpus scored on the other).", "",
             "| test corpus | chosen on the training corpora | inner UA | test UA (4) | the probe's test UA (4) | "
             "test UA (6) |", "|---|---|---:|---:|---:|---:|"]
    for test, choice in results["chosen"].items():
        lines.append(f"| {test} | {choice['candidate']} | {100 * choice['inner_ua']:.1f} | "
                     f"{100 * choice['test_ua']:.1f} | {100 * choice['probe_test_ua']:.1f} | "
                     f"{100 * choice['test_ua_all']:.1f} |")
    lines += ["", "Every candidate (exploration: the test figures of all of them were seen; not selections):", "",
              "| test corpus | candidate | inner UA (mean of 2) | test UA (4) |", "|---|---|---:|---:|"]
    for test, table in results["candidates"].items():
        for name, row in table.items():
            inner = "" if row.get("inner_ua") is None else f"{100 * row['inner_ua']:.1f}"
            outer = "" if row.get("test_ua") is None else f"{100 * row['test_ua']:.1f}"
            lines.append(f"| {test} | {name} | {inner} | {outer} |")
    return "\n".join(lines) + "\n"


def run(args, argv):
    if args.block_tensorflow:
        sys.modules["tensorflow"] = None  # as on the GPU machine: nothing here may need it
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from keras_ser.checksums import file_sha256
    from tf_pipeline.atomic import write_json_atomic
    from tf_pipeline.atomic import write_text_atomic

    start = time.time()

    def log(text):
        print(f"[{time.time() - start:7.1f} s] {text}", flush=True)

    device = "cpu"
    jax_version = None
    if keras.backend.backend() == "jax":
        import jax

        jax_version = jax.__version__
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        device = ", ".join(sorted({getattr(d, "device_kind", str(d)) for d in gpus})) or "cpu"
        if args.require_gpu and not gpus:
            log(f"no GPU visible to JAX ({jax.devices()}); stopping (--require_gpu)")
            return 2
    data = Data(args.data)
    trainer = Trainer(data, args)
    log(f"{len(data.labels)} files, longest {data.lengths.max()} frames, device {device}")

    check = trainer.model(0)
    pooled = keras.Model(check.inputs, check.get_layer("pooled").output)
    check_rows = data.arrays["check_rows"]
    got = np.asarray(pooled.predict_on_batch(data.batch(check_rows, int(data.lengths[check_rows].max()))))
    difference = float(np.max(np.abs(got - data.arrays["check_pooled"])))
    log(f"pooled features here against TensorFlow's: max abs difference {difference:.2e}")

    ks = [int(k) for k in args.fine_tune.split(",")]
    lrs = [float(lr) for lr in args.learning_rates.split(",")]
    checkpoints = sorted({int(e) for e in args.checkpoints.split(",")})
    results = {"command": "python experiments/gpu_encoder_fine_tune.py " + " ".join(argv),
               "device": device, "keras": keras.__version__, "jax": jax_version, "data_sha256": file_sha256(args.data),
               "pooled_check_max_abs": difference, "seed": args.seed, "runs": {}, "chosen": {}, "candidates": {},
               "stopped": None,
               "settings": {"fine_tune": ks, "learning_rates": lrs, "checkpoints": checkpoints,
                            "batch_size": args.batch_size, "crop": args.crop, "dropout": args.dropout,
                            "eval_batch": args.eval_batch, "weights": args.weights,
                            "encoder_kwargs": json.loads(args.encoder_kwargs), "limit": args.limit}}
    os.makedirs(args.out, exist_ok=True)
    earlier = finished_runs(os.path.join(args.out, "results.json"), results)
    if earlier:
        log(f"resuming: {sum(len(r['seconds']) for r in earlier.values())} fine-tuning runs found in {args.out}")

    def save():
        results["wall_s"] = time.time() - start
        write_json_atomic(os.path.join(args.out, "results.json"), results)
        write_text_atomic(os.path.join(args.out, "results.md"), markdown(results))

    sets = training_sets(tests=[name.strip() for name in args.corpora.split(",")])
    for item in sets:
        train_rows, scored_rows = data.rows(item["train"]), data.rows([item["scored_on"]])
        if args.limit:  # a quick check of the path: the first files of each corpus
            train_rows = np.concatenate([data.rows([name])[: args.limit] for name in item["train"]])
            scored_rows = scored_rows[: args.limit]
        probe = data.probe(item["key"])
        record = {"n_train": int(len(train_rows)), "n_scored": int(len(scored_rows)), "C": float(probe["C"]),
                  "scores": {}, "seconds": {}}
        results["runs"][item["key"]] = record
        labels = data.labels[scored_rows]
        probabilities = trainer.predict(trainer.reset(0, probe, 1e-4, args.seed), scored_rows)
        record["scores"]["probe"] = [scored_ua(probabilities, labels, data.class_names),
                                     all_ua(probabilities, labels, len(data.class_names))]
        log(f"{item['key']}: probe (C {probe['C']:g}) UA {100 * record['scores']['probe'][0]:.1f} on "
            f"{item['scored_on']} ({len(train_rows)} training files)")
        for k in ks:
            for lr in lrs:
                if args.budget_s and time.time() - start > args.budget_s:
                    results["stopped"] = f"budget of {args.budget_s} s reached before {item['key']} k={k} lr={lr:g}"
                    log(results["stopped"])
                    save()
                    return 0
                done = earlier.get(item["key"], {})
                if f"k={k} lr={lr:g}" in done.get("seconds", {}):  # finished before the run was stopped
                    record["seconds"][f"k={k} lr={lr:g}"] = done["seconds"][f"k={k} lr={lr:g}"]
                    record["scores"].update({candidate(k, lr, e): done["scores"][candidate(k, lr, e)]
                                             for e in checkpoints})
                    continue
                begin = time.time()
                model = trainer.reset(k, probe, lr, args.seed)
                rng = np.random.default_rng(args.seed)
                for epoch in range(1, checkpoints[-1] + 1):
                    trainer.train_epoch(model, train_rows, rng)
                    if epoch in checkpoints:
                        probabilities = trainer.predict(model, scored_rows)
                        record["scores"][candidate(k, lr, epoch)] = [
                            scored_ua(probabilities, labels, data.class_names),
                            all_ua(probabilities, labels, len(data.class_names))]
                record["seconds"][f"k={k} lr={lr:g}"] = round(time.time() - begin, 1)
                log(f"{item['key']} k={k} lr={lr:g}: UA " + ", ".join(
                    f"{e} ep {100 * record['scores'][candidate(k, lr, e)][0]:.1f}" for e in checkpoints)
                    + f" ({time.time() - begin:.0f} s)")
                save()
        if item["role"] == "outer":
            inner = [s for s in sets if s["test"] == item["test"] and s["role"] == "inner"]
            names = list(record["scores"])
            inner_scores = {n: [results["runs"][s["key"]]["scores"][n][0] for s in inner] for n in names}
            chosen = select(inner_scores)
            results["chosen"][item["test"]] = {
                "candidate": chosen, "inner_ua": float(np.mean(inner_scores[chosen])),
                "test_ua": record["scores"][chosen][0], "test_ua_all": record["scores"][chosen][1],
                "probe_test_ua": record["scores"]["probe"][0]}
            results["candidates"][item["test"]] = {
                n: {"inner_ua": float(np.mean(inner_scores[n])), "test_ua": record["scores"][n][0]} for n in names}
            log(f"test {item['test']}: chosen {chosen} (inner {100 * np.mean(inner_scores[chosen]):.1f}), test UA "
                f"{100 * record['scores'][chosen][0]:.1f} (probe {100 * record['scores']['probe'][0]:.1f})")
        save()
    save()
    log(f"done; {args.out}/results.md")
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare", formatter_class=_HelpFormatter,
                         help="Frames, labels and probes of the three corpora (needs TensorFlow).")
    p.add_argument("--data_dir", required=True,
                   help="The EMO-DB wav folder, the RAVDESS folder and the EMOVO folder, comma-separated.")
    p.add_argument("--feature_cache", default=None, help="The runner's feature store folder (pooled features).")
    p.add_argument("--out", default=os.path.join(ROOT, ".gpu_data", "loco_frames.npz"), help="The .npz to write.")
    r = steps.add_parser("run", formatter_class=_HelpFormatter,
                         help="The nested grid (Keras on JAX; no TensorFlow needed).")
    r.add_argument("--data", default=os.path.join(ROOT, ".gpu_data", "loco_frames.npz"), help="prepare's .npz.")
    r.add_argument("--out", default=os.path.join(ROOT, "runs", "gpu_fine_tune"), help="Folder of the results.")
    r.add_argument("--corpora", default=",".join(CORPORA), help="Test corpora, in turn (default: all three).")
    r.add_argument("--fine_tune", default="1,3", help="Top LSTM layers trained, comma-separated.")
    r.add_argument("--learning_rates", default="3e-5,1e-4,3e-4", help="Adam learning rates, comma-separated.")
    r.add_argument("--checkpoints", default="1,2,4", help="Epochs after which a run is scored (each a candidate).")
    r.add_argument("--batch_size", type=int, default=32, help="Training utterances per step.")
    r.add_argument("--crop", type=int, default=400,
                   help="Training frames per utterance: a random window of this many frames of a longer one.")
    r.add_argument("--eval_batch", type=int, default=128, help="Utterances per scoring step (whole length).")
    r.add_argument("--dropout", type=float, default=0.5, help="Dropout on the standardised pooled features.")
    r.add_argument("--weights", default="resemblyzer",
                   help="Encoder weights: resemblyzer (shipped), a converted .npz, or none (random, for checks).")
    r.add_argument("--encoder_kwargs", default="{}", help="JSON SpeakerEncoder arguments (a tiny one for checks).")
    r.add_argument("--limit", type=int, default=0,
                   help="Files per corpus at most (0: all): a quick check of the whole path, not a result.")
    r.add_argument("--seed", type=int, default=0, help="Seed of the crops, shuffles, dropout and random weights.")
    r.add_argument("--budget_s", type=float, default=0, help="Stop between runs after this many seconds (0: none).")
    r.add_argument("--require_gpu", action="store_true", help="Stop at once when JAX sees no GPU.")
    r.add_argument("--block_tensorflow", action="store_true",
                   help="Make `import tensorflow` fail, as on the GPU machine (for checks elsewhere).")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.step == "run":
        unknown = [name for name in args.corpora.split(",") if name.strip() not in CORPORA]
        if unknown:
            parser.error(f"--corpora takes test corpora among {', '.join(CORPORA)}. Received: {args.corpora!r}")
    return prepare(args) if args.step == "prepare" else run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
