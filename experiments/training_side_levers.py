r"""More leave-one-corpus-out levers on the GE2E statistics (`cross_corpus.py --grids=loco_more_levers`, ...).

Each lever changes what the probe is trained on, or how the frames are
pooled, and nothing about the test corpus is looked at; the probe is the
six-emotion one of the multilingual preset (standardisation and a
multinomial logistic regression on the training corpora's files of the six
emotions all three corpora have, C chosen by leaving one training corpus
out, scored over the six on the held-out training corpus's original files;
the test corpus scored among the four shared emotions, arg-max among them):

- `speed`: the training corpora's files played 0.9 and 1.1 times as fast
  (resampled: tempo, pitch and formants move together, the classic speed
  perturbation of speech recognition), three copies of each training
  file; the perturbed copies are written once as 16-bit WAV under
  `<cache_dir>/speed_perturbed/` and their features cached like any file's.
- `speech_pooled_<X>db`: mean and std of each LSTM layer over the frames
  whose Mel power is within X dB of the utterance's loudest frame only
  (pauses inside the utterance left out of the pooling; the front end
  already trims the leading and trailing silence).
- `weights_class`, `weights_corpus_class`: sample weights that give each
  class (or each corpus's class) the same total weight.

`loco_channel_levers` (`--grids=loco_channel_levers`): the training corpora's
files also heard through another channel, one copy per file and kind, with
the random draws of two seeds: `eq` (a smooth random equaliser, +-6 dB at
the octaves from 125 Hz to 4 kHz) and `reverb` (a synthetic room: decaying
noise, RT60 0.2-0.7 s, direct-to-reverberant ratio 0-10 dB); both kinds
together; each with one seed's copies or every seed's; and, per seed (and
for every seed together), the variant chosen by its inner UA on the
training corpora (`chosen_seed<N>`, `chosen_all_seeds`).

`loco_unseen_channels` (`--grids=loco_unseen_channels`): the runner's probe
trained without channel copies, with those of the multilingual preset
(three draws of each kind) and with background-noise copies too, its test
corpus scored as recorded and heard through an equaliser, a room or a noise
no training copy was drawn from.

`loco_functionals` (`--grids=loco_functionals`, needs the `opensmile`
package): openSMILE's eGeMAPS and ComParE functionals of the front end's
audio, alone, concatenated with the GE2E statistics, and as a second probe
whose log-probabilities are added to the GE2E probe's.

Example (after `cross_corpus.py` has cached the corpora's features):

    python experiments/cross_corpus.py --model=encoder_stats --emodb_dir=/data/emodb/wav \
        --ravdess_dir=/data/ravdess --emovo_dir=/data/emovo --front_end=speech --grids=loco_more_levers
"""

import itertools
import os
import time

import numpy as np

from keras_ser.training.channel_copies import heard_through

SIX = ("anger", "happiness", "sadness", "neutral", "fear", "disgust")
FOUR = SIX[:4]
SPEED_FACTORS = (0.9, 1.1)
SPEECH_POOLING_DB = (50.0, 40.0, 30.0, 20.0)
WEIGHTINGS = ("class", "corpus_class")
CHANNEL_KINDS = ("eq", "reverb")  # the kinds of loco_channel_levers and of the multilingual preset's copies
CHANNEL_SEEDS = (0, 1)
RUNNER_DRAWS = 3  # loco_unseen_channels: the copies of the multilingual preset (--channel_draws=3)
UNSEEN_DRAW = 1000  # loco_unseen_channels: the test corpus's channel draw, one no training copy uses
C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # the runner's grid up to 0.1: every choice of these corpora lay there


def scores(true, predicted, classes):
    """WA, UA and per-class recall over `classes` (names)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    recall = {c: float(np.mean(predicted[true == c] == c)) for c in classes if np.any(true == c)}
    return {"wa": float(np.mean(true == predicted)), "ua": float(np.mean(list(recall.values()))), "recall": recall}


def fit_regression(x, y, c, weights):
    """`keras_ser.training.regressions.fit_standardized` with sample weights (or None) and up to 3,000 iterations."""
    from keras_ser.training.regressions import fit_standardized

    return fit_standardized(x, y, c, sample_weight=weights, max_iter=3000)


def _log_probabilities(fitted, x, classes):
    """The regression's log-probabilities of `classes` (renormalised among them), `[n, len(classes)]`."""
    scaler, classifier = fitted
    columns = [list(classifier.classes_).index(name) for name in classes]
    logits = classifier.decision_function(scaler.transform(x))[:, columns]
    logits = logits - logits.max(1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def predict_among(fitted, x, classes):
    """The class of `classes` with the highest probability, per row of `x`."""
    return np.array(classes)[np.argmax(_log_probabilities(fitted, x, classes), axis=1)]


def balanced_weights(labels, corpora, mode):
    """Sample weights giving each class (`"class"`) or each (corpus, class) (`"corpus_class"`) equal total weight;
    None for `"none"`. They sum to the number of rows."""
    if mode == "none":
        return None
    keys = labels if mode == "class" else np.char.add(np.char.add(corpora.astype(str), "|"), labels.astype(str))
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights * len(weights) / weights.sum()


def loco_probe(train_parts, test_part, weighting="none"):
    """One leave-one-corpus-out fold of the six-emotion probe.

    Args:
        train_parts: `{corpus: (features, labels, original)}` of the training
            corpora (`original`: bool per row, False for perturbed copies,
            which are trained on and never scored).
        test_part: `(features, labels)` of the test corpus.
        weighting: `balanced_weights` mode.

    Returns:
        dict with `wa`, `ua`, `recall` (among the four shared emotions), `C`,
        `inner_ua` and `n_train`.
    """
    names = list(train_parts)
    x = np.concatenate([train_parts[n][0] for n in names])
    y = np.concatenate([train_parts[n][1] for n in names])
    original = np.concatenate([train_parts[n][2] for n in names])
    corpus = np.concatenate([np.full(len(train_parts[n][1]), n) for n in names])
    inner = {}
    for c in C_GRID:
        uas = []
        for held in names:
            rows = corpus != held
            fitted = fit_regression(x[rows], y[rows], c, balanced_weights(y[rows], corpus[rows], weighting))
            scored = (corpus == held) & original
            uas.append(scores(y[scored], predict_among(fitted, x[scored], SIX), SIX)["ua"])
        inner[c] = float(np.mean(uas))
    best = max(C_GRID, key=lambda c: (inner[c], -c))
    fitted = fit_regression(x, y, best, balanced_weights(y, corpus, weighting))
    x_test, y_test = test_part
    keep = np.isin(y_test, FOUR)
    log_probabilities = _log_probabilities(fitted, x_test[keep], FOUR)
    result = scores(y_test[keep], np.array(FOUR)[np.argmax(log_probabilities, axis=1)], FOUR)
    return {**result, "C": best, "inner_ua": {str(c): round(v, 4) for c, v in inner.items()}, "n_train": len(y),
            "n_test": int(keep.sum()), "log_probabilities": log_probabilities, "labels": y_test[keep]}


def six_emotion_subset(corpus):
    """`(corpus of its files of the six emotions, their shared label names)`."""
    from tf_pipeline.corpora import to_shared_vocabulary

    shared = to_shared_vocabulary(corpus)
    keep = [i for i, record in enumerate(shared.records) if shared.class_names[record.label] in SIX]
    return corpus.subset(keep), np.array([shared.class_names[shared.records[i].label] for i in keep])


def written_copy(corpus, out_dir, transform, sample_rate=16000):
    """A copy of `corpus` whose files are `transform(waveform)` of its own, written once as 16-bit WAV.

    Each file is read at `sample_rate` (`tf_pipeline.audio.load_audio`),
    transformed, and written to `<out_dir>/<corpus>/<index>_<file name>.wav`
    (atomically); a file already there is kept, so a rerun reads the copies
    (and the feature caches keyed by their paths) again.
    """
    import dataclasses
    import io

    import soundfile

    from tf_pipeline.atomic import write_atomic
    from tf_pipeline.audio import load_audio

    records = []
    for index, record in enumerate(corpus.records):
        stem = os.path.splitext(os.path.basename(record.path))[0]
        path = os.path.join(out_dir, corpus.name, f"{index:05d}_{stem}.wav")
        if not os.path.exists(path):
            buffer = io.BytesIO()
            soundfile.write(buffer, transform(load_audio(record.path)), sample_rate, format="WAV", subtype="PCM_16")
            write_atomic(path, lambda stream: stream.write(buffer.getvalue()))
        records.append(dataclasses.replace(record, path=path))
    return dataclasses.replace(corpus, records=tuple(records))


def speed_perturbed(corpus, factor, out_dir, sample_rate=16000):
    """A copy of `corpus` whose files play `factor` times as fast, written once under `<out_dir>/speed<factor>/`.

    Each file is resampled from `sample_rate * factor` to `sample_rate`
    (`tf_pipeline.audio.resample`) and clipped to full scale (`written_copy`).
    """
    from tf_pipeline.audio import resample

    rate_in = int(round(sample_rate * factor))
    return written_copy(corpus, os.path.join(out_dir, f"speed{factor:g}"),
                        lambda waveform: np.clip(resample(waveform, rate_in, sample_rate).numpy(), -1.0, 1.0),
                        sample_rate)


def channel_copy(corpus, kind, seed, out_dir, sample_rate=16000):
    """A copy of `corpus` heard through another channel, written once under `<out_dir>/<kind>_seed<seed>/`.

    Each file is `keras_ser.training.channel_copies.heard_through(waveform,
    kind, seed)`: its draw comes from `seed` and a checksum of its samples,
    so a rerun that finds some copies already written draws the others as
    the first run did (`written_copy`). The runner makes the same copies in
    memory (`keras-ser loso --channel_copies=...`); these are written as
    16-bit WAV.
    """
    def heard(waveform):
        return heard_through(waveform, kind, seed, sample_rate)

    return written_copy(corpus, os.path.join(out_dir, f"{kind}_seed{seed}"), heard, sample_rate)


def speech_pooled_features(corpus, feature_config, thresholds_db, batch_size=16):
    """`{threshold: [n, 1536] features}`: the GE2E statistics pooled over each utterance's loud frames only.

    A frame is kept when its Mel power (summed over bands) is within
    `threshold` dB of the utterance's loudest frame; `None` keeps every
    frame (the statistics `encoder_stats` pools).
    """
    import tensorflow as tf

    import tf_pipeline
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.fitting import build_model_for_config
    from keras_ser.training.frozen import length_order

    model = build_model_for_config(TrainConfig(model="encoder_stats", recipe="probe", validation="none"),
                                   list(SIX), feature_config)
    encoder = model.get_layer("speaker_encoder")
    preprocessor = model.preprocessor

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.float32),
                                                   tf.TensorSpec([None], tf.int32)])
    def frames(waveforms, num_samples):
        mel = preprocessor.batch(waveforms, num_samples)
        sequences = encoder(mel)
        return mel, [sequences[name] for name in encoder.sequence_outputs]

    order = length_order(corpus)
    dataset = tf_pipeline.waveform_dataset(corpus, order, lambda w, n: (w, n), feature_config, batch_size=batch_size)
    out = {t: np.zeros((len(corpus), 2 * encoder.units * encoder.num_layers), np.float32) for t in thresholds_db}
    done = 0
    for (waveforms, num_samples), _ in dataset:
        mel, sequences = frames(waveforms, num_samples)
        mel = mel.numpy()
        real = mel[..., 0] >= 0  # the padding of the Mel frames is -1
        energy = np.where(real, 10 * np.log10(np.maximum(mel.sum(-1), 1e-10)), -np.inf)
        for threshold in thresholds_db:
            mask = real if threshold is None else energy >= energy.max(1, keepdims=True) - threshold
            weight = mask[..., None].astype(np.float64)
            count = weight.sum(1)
            pooled = []
            for sequence in sequences:
                sequence = sequence.numpy().astype(np.float64)
                mean = (sequence * weight).sum(1) / count
                variance = (((sequence - mean[:, None]) ** 2) * weight).sum(1) / count
                pooled += [mean, np.sqrt(np.maximum(variance, 0.0))]
            out[threshold][order[done:done + len(mask)]] = np.concatenate(pooled, 1)
        done += len(mask)
    return out


def six_emotion_features(corpora_by_name, feature_config, cache_dir, copies=None, log=print):
    """`(subsets, features)`: each corpus's files of the six emotions and the GE2E statistics of them and their copies.

    `subsets` is `{name: six_emotion_subset(corpus)}`; `features` holds the
    statistics of each subset's files under `(name, None)` and, for every
    `key, make` of `copies` (`make(subset)` returns a copy of the subset, e.g.
    `speed_perturbed`), those of the copy under `(name, key)`; all go through
    the feature store in `cache_dir`.
    """
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig

    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none")
    subsets = {name: six_emotion_subset(corpus) for name, corpus in corpora_by_name.items()}
    start = time.time()
    features = {}
    for name, (corpus, _) in subsets.items():
        features[(name, None)] = frozen.corpus_features(corpus, config, feature_config, cache_dir=cache_dir)
        for key, make in (copies or {}).items():
            features[(name, key)] = frozen.corpus_features(make(corpus), config, feature_config, cache_dir=cache_dir)
        if copies:
            log(f"copies of {name} and their features ready ({time.time() - start:.0f} s)")
    return subsets, features


def training_part(features, labels, name, keys=(), own=None):
    """`(features, labels, original)` of corpus `name` for `loco_probe`: the rows of its own files (`own`, or
    `features[(name, None)]`), then those of each copy `features[(name, key)]` for `key` in `keys`."""
    xs = [features[(name, None)] if own is None else own] + [features[(name, key)] for key in keys]
    return (np.concatenate(xs), np.tile(labels, len(xs)),
            np.concatenate([np.full(len(labels), i == 0) for i in range(len(xs))]))


def loco_more_levers(corpora_by_name, feature_config, cache_dir, log=print):
    """`{lever: {test corpus: fold dict}}` for the baseline and every lever (see the module docstring)."""
    names = list(corpora_by_name)
    out_dir = os.path.join(cache_dir, "speed_perturbed")
    copies = {factor: (lambda corpus, factor=factor: speed_perturbed(corpus, factor, out_dir))
              for factor in SPEED_FACTORS}
    subsets, features = six_emotion_features(corpora_by_name, feature_config, cache_dir, copies, log)
    start = time.time()
    pooled = {n: speech_pooled_features(subsets[n][0], feature_config, SPEECH_POOLING_DB) for n in names}
    log(f"speech-only pooling: features ready ({time.time() - start:.0f} s)")

    def parts(name, factors=(), source=None):
        return training_part(features, subsets[name][1], name, factors, None if source is None else source[name])

    variants = {"baseline": {}, "speed": {"factors": SPEED_FACTORS}}
    variants.update({f"speech_pooled_{t:g}db": {"source": {n: pooled[n][t] for n in names}}
                     for t in SPEECH_POOLING_DB})
    variants.update({f"weights_{mode}": {"weighting": mode} for mode in WEIGHTINGS})
    rows = {}
    for lever, options in variants.items():
        for test in names:
            start = time.time()
            train = {n: parts(n, options.get("factors", ()), options.get("source")) for n in names if n != test}
            test_x = features[(test, None)] if "source" not in options else options["source"][test]
            result = loco_probe(train, (test_x, subsets[test][1]), options.get("weighting", "none"))
            result["wall"] = time.time() - start
            del result["log_probabilities"], result["labels"]
            rows.setdefault(lever, {})[test] = result
            log(f"LOCO [{lever}] test {test}: UA {result['ua']:.3f} C={result['C']}")
    return rows


def loco_channel_levers(corpora_by_name, feature_config, cache_dir, log=print):
    """`{lever: {test corpus: fold dict}}`: channel copies of the training files (see the module docstring).

    Levers: `baseline`, `<kind>_seed<N>` and `eq+reverb_seed<N>` for each
    seed of `CHANNEL_SEEDS`, the same with the copies of every seed together
    (`<kind>_all_seeds`, `eq+reverb_all_seeds`: several draws per training
    file), and `chosen_seed<N>` / `chosen_all_seeds`: per test corpus, the
    one of `baseline`, `eq`, `reverb` and `eq+reverb` (those draws) with the
    highest inner UA at its chosen C, an inner UA computed on the training
    corpora only; its fold names the variant in `variant`.
    """
    names = list(corpora_by_name)
    out_dir = os.path.join(cache_dir, "channel_copies")
    copies = {(kind, seed): (lambda corpus, kind=kind, seed=seed: channel_copy(corpus, kind, seed, out_dir))
              for seed in CHANNEL_SEEDS for kind in CHANNEL_KINDS}
    subsets, features = six_emotion_features(corpora_by_name, feature_config, cache_dir, copies, log)

    # Each seed's draws alone, then the copies of every seed together (several draws per training file).
    draws = {f"seed{seed}": (seed,) for seed in CHANNEL_SEEDS}
    draws["all_seeds"] = CHANNEL_SEEDS
    variants = {"baseline": ()}
    for suffix, seeds in draws.items():
        variants.update({f"{kind}_{suffix}": tuple((kind, seed) for seed in seeds) for kind in CHANNEL_KINDS})
        variants[f"eq+reverb_{suffix}"] = tuple((kind, seed) for seed in seeds for kind in CHANNEL_KINDS)
    rows = {}
    for lever, keys in variants.items():
        for test in names:
            fold_start = time.time()
            train = {n: training_part(features, subsets[n][1], n, keys) for n in names if n != test}
            result = loco_probe(train, (features[(test, None)], subsets[test][1]))
            result["wall"] = time.time() - fold_start
            del result["log_probabilities"], result["labels"]
            rows.setdefault(lever, {})[test] = result
            log(f"LOCO [{lever}] test {test}: UA {result['ua']:.3f} C={result['C']}")
    for suffix in draws:
        for test in names:
            candidates = ["baseline"] + [f"{v}_{suffix}" for v in (*CHANNEL_KINDS, "eq+reverb")]
            chosen = chosen_variant({v: rows[v][test] for v in candidates})
            rows.setdefault(f"chosen_{suffix}", {})[test] = {**rows[chosen][test], "variant": chosen}
            log(f"LOCO [chosen_{suffix}] test {test}: {chosen}, UA {rows[chosen][test]['ua']:.3f}")
    return rows


def loco_unseen_channels(corpora_by_name, feature_config, cache_dir, log=print, draws=RUNNER_DRAWS):
    """`{lever: {test corpus: fold dict}}`: the runner's probe with and without channel copies, its test corpus
    as recorded and heard through a channel no training copy was drawn from.

    The probe is the runner's (`keras_ser.training.frozen.fit_probe`, C from
    its grid chosen by leaving one training corpus out), trained on the
    training corpora's files of the six emotions (`train_plain_*`) or on
    them and `draws` equaliser and room copies of each
    (`train_copies_*`: `keras-ser loso --channel_copies=eq,reverb
    --channel_draws=3`, the same features from the same cache), or with
    `draws` background-noise copies too (`train_copies+noise_*`). Each is
    scored among the four shared emotions on the test corpus as recorded
    (`*_test_recorded`), through a random equaliser (`*_test_eq`), in a
    synthetic room (`*_test_reverb`) and with background noise
    (`*_test_noise`), one draw per file numbered `UNSEEN_DRAW`, which no
    training copy uses: a microphone, a room and a noise the model never
    heard.
    """
    from keras_ser.training import frozen
    from keras_ser.training.channel_copies import copy_keys
    from keras_ser.training.config import TrainConfig

    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none")
    names = list(corpora_by_name)
    subsets, features = six_emotion_features(corpora_by_name, feature_config, cache_dir, log=log)

    def heard(name, key):
        if (name, key) not in features:
            start = time.time()
            features[(name, key)] = frozen.corpus_features(subsets[name][0], config, feature_config,
                                                           cache_dir=cache_dir, channel=key)
            log(f"{name} through {key}: features ready ({time.time() - start:.0f} s)")
        return features[(name, key)]

    tests = {"recorded": None, **{kind: (kind, UNSEEN_DRAW) for kind in (*CHANNEL_KINDS, "noise")}}
    trainings = {"plain": (), "copies": copy_keys(CHANNEL_KINDS, draws),
                 "copies+noise": copy_keys((*CHANNEL_KINDS, "noise"), draws)}
    rows = {}
    for training, keys in trainings.items():
        for test in names:
            start = time.time()
            train_names = [n for n in names if n != test]
            for n, key in itertools.product(train_names, keys):
                heard(n, key)  # extracted (or read from the cache) once, into `features`
            train = {n: training_part(features, subsets[n][1], n, keys) for n in train_names}
            x = np.concatenate([part[0] for part in train.values()])
            labels = np.array([SIX.index(c) for c in np.concatenate([part[1] for part in train.values()])])
            groups = np.concatenate([np.full(len(part[0]), n) for n, part in train.items()])
            scored = np.concatenate([part[2] for part in train.values()])
            probe = frozen.fit_probe(x, labels, groups, len(SIX), scored=scored)
            fit_wall = time.time() - start
            truth = subsets[test][1]
            keep = np.isin(truth, FOUR)
            for condition, key in tests.items():
                x_test = heard(test, key)[keep]
                logits = frozen.probe_logits(probe, x_test)[:, [SIX.index(c) for c in FOUR]]
                result = scores(truth[keep], np.array(FOUR)[np.argmax(logits, axis=1)], FOUR)
                lever = f"train_{training}_test_{condition}"
                rows.setdefault(lever, {})[test] = {**result, "C": probe["C"], "inner_ua": probe["inner_ua"],
                                                    "n_train": int(scored.sum()), "n_test": int(keep.sum()),
                                                    "wall": fit_wall}
                log(f"LOCO [{lever}] test {test}: UA {result['ua']:.3f} C={probe['C']}")
    return rows


def chosen_variant(folds):
    """The key of `folds` (`{variant: loco_probe fold}`, in order of preference) whose inner UA at its chosen C
    is highest; the first of equal ones. Only the inner UA, computed on the training corpora, is read."""
    inner = {variant: fold["inner_ua"][str(fold["C"])] for variant, fold in folds.items()}
    return max(folds, key=lambda variant: (inner[variant], -list(folds).index(variant)))


FUNCTIONAL_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


def front_end_copy(corpus, front_end, out_dir, sample_rate=16000):
    """A copy of `corpus` whose files are the speech front end's output, written once under `out_dir`.

    Each file goes through `tf_pipeline.front_end.apply_front_end` (the
    trimming and level the encoders' inputs get) and is scaled down only if
    its peak then exceeds full scale (`written_copy`).
    """
    import tensorflow as tf

    from tf_pipeline.front_end import apply_front_end

    def trimmed_and_levelled(waveform):
        kept, length = apply_front_end(tf.constant(waveform[None]), tf.constant([len(waveform)], tf.int32),
                                       front_end, sample_rate)
        audio = kept.numpy()[0, :int(length.numpy()[0])]
        return audio / max(1.0, float(np.abs(audio).max()))

    return written_copy(corpus, out_dir, trimmed_and_levelled, sample_rate)


def functionals(corpus, feature_set, front_end, cache_dir):
    """openSMILE functionals (`feature_set`, e.g. `"eGeMAPSv02"`) of every file after the speech front end.

    The front end's audio is written once (`front_end_copy`, under
    `<cache_dir>/front_end_audio/`); openSMILE runs on it in its own
    process (`keras_ser.baselines.extract_functionals`, cached under
    `<cache_dir>/functionals/`).
    """
    from keras_ser.baselines.opensmile_features import extract_functionals

    copy = front_end_copy(corpus, front_end, os.path.join(cache_dir, "front_end_audio"))
    return extract_functionals(copy.paths, feature_set, cache_dir=os.path.join(cache_dir, "functionals")).features


def loco_functionals(corpora_by_name, feature_config, cache_dir, log=print):
    """`{lever: {test corpus: fold dict}}`: openSMILE functionals alone, beside the GE2E statistics, and the two
    probes' log-probabilities added (each probe's C chosen on the training corpora as in `loco_probe`)."""
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig

    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none")
    names = list(corpora_by_name)
    subsets = {n: six_emotion_subset(corpora_by_name[n]) for n in names}
    ge2e = {n: frozen.corpus_features(subsets[n][0], config, feature_config, cache_dir=cache_dir) for n in names}

    def probe(source, test):
        start = time.time()
        train = {n: (source[n], subsets[n][1], np.ones(len(subsets[n][1]), bool)) for n in names if n != test}
        fold = loco_probe(train, (source[test], subsets[test][1]))
        fold["wall"] = time.time() - start
        return fold

    ge2e_folds = {test: probe(ge2e, test) for test in names}  # the late fusion's partner, one per test corpus
    rows = {}
    for short, feature_set in FUNCTIONAL_SETS.items():
        start = time.time()
        table = {n: functionals(subsets[n][0], feature_set, feature_config.front_end, cache_dir) for n in names}
        log(f"{feature_set}: functionals ready ({time.time() - start:.0f} s)")
        sources = {short: table, f"{short}_beside_ge2e": {n: np.concatenate([ge2e[n], table[n]], 1) for n in names}}
        for test in names:
            folds = {lever: probe(source, test) for lever, source in sources.items()}
            partner = ge2e_folds[test]
            late = partner["log_probabilities"] + folds[short]["log_probabilities"]
            folds[f"{short}_late_with_ge2e"] = {
                **scores(folds[short]["labels"], np.array(FOUR)[np.argmax(late, axis=1)], FOUR),
                "C": [partner["C"], folds[short]["C"]], "inner_ua": {}, "n_train": folds[short]["n_train"],
                "n_test": folds[short]["n_test"], "wall": partner["wall"] + folds[short]["wall"]}
            for lever, fold in folds.items():
                fold.pop("log_probabilities", None)
                fold.pop("labels", None)
                rows.setdefault(lever, {})[test] = fold
                log(f"LOCO [{lever}] test {test}: UA {fold['ua']:.3f} C={fold['C']}")
    return rows


def _draws(lever):
    """Which random draws a channel lever's copies come from, in words."""
    if lever.endswith("_all_seeds"):
        return "one copy per seed of " + ", ".join(map(str, CHANNEL_SEEDS)) + " (several draws per file)"
    return "draws of seed " + lever.rsplit("seed", 1)[1]


def lever_protocol(lever):
    """The leaderboard's protocol text of a lever of this grid."""
    base = ("leave-one-corpus-out; trained on the six emotions all three corpora have, C chosen by leaving one "
            "training corpus out, scored among the four shared emotions")
    if lever == "speed":
        return base + "; the training files also played 0.9 and 1.1 times as fast (speed perturbation)"
    if lever.startswith("speech_pooled_"):
        return base + (f"; statistics pooled over the frames within {lever.split('_')[-1][:-2]} dB of each "
                       "utterance's loudest frame only")
    for short, feature_set in FUNCTIONAL_SETS.items():
        if lever.startswith(short):
            what = f"openSMILE {feature_set} functionals of the front end's audio"
            if lever == short:
                return base + f"; {what} instead of the GE2E statistics"
            if lever.endswith("beside_ge2e"):
                return base + f"; {what} concatenated with the GE2E statistics"
            return base + (f"; the log-probabilities of a probe on the {what} and of the GE2E probe added (each C "
                           "chosen by leaving one training corpus out)")
    if lever.startswith("chosen_"):
        return base + ("; the training files also heard through another channel or not (none, a random equaliser, "
                       f"a synthetic room, or both; {_draws(lever)}), the variant chosen by its inner UA on the "
                       "training corpora")
    for kind, what in (("eq+reverb", "through a random equaliser and, as a second copy, in a synthetic room"),
                       ("eq", "through a random equaliser (+-6 dB at the octaves 125 Hz-4 kHz)"),
                       ("reverb", "in a synthetic room (RT60 0.2-0.7 s)")):
        if lever.startswith(kind + "_seed") or lever == kind + "_all_seeds":
            return base + f"; the training files also heard {what}, {_draws(lever)}"
    if lever.startswith("train_"):
        _, training, _, condition = lever.split("_")
        trained = {"plain": "", "copies": "; the training files also heard through three random equalisers and "
                   "three synthetic rooms (--channel_copies=eq,reverb --channel_draws=3)",
                   "copies+noise": "; the training files also heard through three random equalisers, three "
                   "synthetic rooms and three background noises (--channel_copies=eq,reverb,noise "
                   "--channel_draws=3)"}[training]
        heard = {"recorded": "as recorded", "eq": "through a random equaliser no training copy was drawn from",
                 "reverb": "in a synthetic room no training copy was drawn from",
                 "noise": "with background noise no training copy was drawn from"}[condition]
        return (base.replace(", C chosen", ", C from the runner's grid chosen") + trained
                + f"; the test corpus heard {heard}")
    if lever.startswith("weights_"):
        return base + ("; sample weights balancing the classes" if lever == "weights_class"
                       else "; sample weights balancing each corpus's classes")
    return base
