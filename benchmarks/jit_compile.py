"""Training step with and without XLA (`jit_compile`), per zoo model, in one process.

For each model below, builds it twice from the same seed, compiles it once
with `jit_compile=False` and once with `jit_compile=True` (the keras-ser
compile defaults otherwise: Adam, sparse cross-entropy, WA and UA), and runs
`model.train_on_batch` on the same random inputs of realistic shape: one
warm-up step (tracing, and for XLA the compilation; reported on its own),
then `--steps` timed steps, of which the median counts. Prints seconds per
step without and with XLA and the ratio XLA / no XLA (above 1: XLA is
slower). For the models on padded frame sequences (`sru`,
`encoder_stats_ft1`), whose batches change length, it also times one step
at a new length (XLA compiles every new shape). With `--json` it writes the
table and a recommendation:

- `recommended_xla`: False when XLA is slower for a majority of the models;
- `recommended_default`: the `TrainConfig.jit_compile` value that gives it.
  `"auto"` when Keras' own choice on this machine (read from a compiled
  model) already equals `recommended_xla`: "auto" also keeps `jax.jit` on
  the JAX backend, where `jit_compile=False` means no compilation at all;
  otherwise `recommended_xla` itself.

Times are printed, never asserted.

Models (`--models`; the paper-size one only with `--paper`):

- `cnn_sru_small`: the demo's CNN+SRU, narrow AlexNet at 67 px, SRU 64, N=3;
- `cnn_sru_paper`: the paper's CNN+SRU, AlexNet (caffe) at 227 px, SRU 4096,
  N=3 (`--paper_batch_size`, `--paper_steps`: about 4 s a step on 2 cores);
- `cnn_sru_efficientnet`: CNN+SRU on EfficientNet-Lite0 (random weights) at
  112 px, SRU 256, N=3;
- `sru`: the SRU baseline on frames `[B, 300, 180]`, SRU 256;
- `encoder_stats_head`, `encoder_sru_head`: the heads the `frozen` recipe
  trains (`model.head_model()`) on random pooled features;
- `encoder_stats_ft1`: `EncoderStatsClassifier` on the pretrained speaker
  encoder with its top LSTM trainable (`fine_tune=1`), on `mel_frames`
  `[B, 300, 40]`.

Usage:

    python benchmarks/jit_compile.py --json benchmarks/results/jit_compile_cpu.json
    python benchmarks/jit_compile.py --models sru encoder_stats_head --steps 5
    python benchmarks/jit_compile.py --paper --models cnn_sru_paper --paper_batch_size 10 --paper_steps 1
    KERAS_BACKEND=jax python benchmarks/jit_compile.py --models cnn_sru_small sru   # jit=False: no jax.jit
"""

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

NUM_CLASSES = 7  # EMO-DB
N_SEGMENTS = 3
FRAMES = 300  # about 3 s of speech at 10 ms per frame (EMO-DB utterances: 1.2-9 s)
SMALL_ALEXNET = {"filters": [16, 32, 48, 48, 32], "fc_units": 128}
MODELS = ("cnn_sru_small", "cnn_sru_paper", "cnn_sru_efficientnet", "sru", "encoder_stats_head",
          "encoder_sru_head", "encoder_stats_ft1")
# Models on padded frame sequences, whose batches change length (timed once more at new lengths).
FRAME_MODELS = ("sru", "encoder_stats_ft1")
DEFAULT_MODELS = tuple(name for name in MODELS if name != "cnn_sru_paper")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None,
                        help="models to time (default: all but cnn_sru_paper; with --paper, all)")
    parser.add_argument("--paper", action="store_true",
                        help="also time the paper-size CNN+SRU (227 px, SRU 4096): slow on a CPU")
    parser.add_argument("--batch_size", type=int, default=32, help="utterances per batch (default 32)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model and setting (default 3)")
    parser.add_argument("--paper_batch_size", type=int, default=10,
                        help="batch size of cnn_sru_paper (default 10)")
    parser.add_argument("--paper_steps", type=int, default=1, help="timed steps of cnn_sru_paper (default 1)")
    parser.add_argument("--frames", type=int, default=FRAMES,
                        help=f"frames per utterance of sru and encoder_stats_ft1 (default {FRAMES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON to PATH")
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = list(MODELS if args.paper else DEFAULT_MODELS)
    if "cnn_sru_paper" in args.models and not args.paper:
        parser.error("cnn_sru_paper is slow on a CPU: pass --paper to time it")
    for name in ("batch_size", "steps", "paper_batch_size", "paper_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer. Received: {getattr(args, name)}")
    if args.frames < 40:
        parser.error(f"--frames must be at least 40. Received: {args.frames}")
    return args


def _compile_like_frozen(head, jit_compile):
    """The `frozen` recipe's compile of a head (Adam, sparse cross-entropy, WA, UA)."""
    import keras

    import keras_ser

    head.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-4),
                 loss=keras.losses.SparseCategoricalCrossentropy(),
                 metrics=[keras.metrics.SparseCategoricalAccuracy(name="wa"),
                          keras_ser.metrics.UnweightedAccuracy(num_classes=NUM_CLASSES, name="ua")],
                 jit_compile=jit_compile)


def _padded(x, rng, pad_value, low=0.5):
    """`x` `[batch, frames, features]` with each row's tail after a random length in
    [low * frames, frames] set to `pad_value`, as in a padded batch of utterances."""
    batch, frames = x.shape[:2]
    lengths = rng.integers(int(low * frames), frames + 1, size=batch)
    lengths[0] = frames  # the longest utterance sets the batch length
    for row, length in enumerate(lengths):
        x[row, length:] = pad_value
    return x


def build(name, jit_compile, args, rng):
    """`(model, x, y, batch)` for one model, compiled with `jit_compile`."""
    import numpy as np

    import keras_ser

    batch = args.paper_batch_size if name == "cnn_sru_paper" else args.batch_size
    if name.startswith("cnn_sru"):
        size, sru_units, kwargs = {
            "cnn_sru_small": (67, 64, dict(backbone_kwargs=SMALL_ALEXNET)),
            "cnn_sru_paper": (227, 4096, {}),
            "cnn_sru_efficientnet": (112, 256, dict(backbone="efficientnet_lite0", backbone_weights=None)),
        }[name]
        model = keras_ser.build_model("cnn_sru", n_segments=N_SEGMENTS, num_classes=NUM_CLASSES,
                                      sru_units=sru_units, image_size=size, compile=False, **kwargs)
        model.compile(jit_compile=jit_compile)
        # Raw log-Mel / delta / delta-delta values (the model standardises them itself).
        x = rng.normal(size=(batch, N_SEGMENTS, size, size, 3)).astype(np.float32)
    elif name == "sru":
        model = keras_ser.build_model("sru", num_classes=NUM_CLASSES, sru_units=256, compile=False)
        model.compile(jit_compile=jit_compile)
        # [log-Mel | delta | delta-delta] per frame, zero-padded (the model masks all-zero frames).
        x = _padded(rng.normal(size=(batch, args.frames, 3 * model.feature_config.n_mels)).astype(np.float32),
                    rng, pad_value=0.0)
    elif name.endswith("_head"):
        full = keras_ser.build_model(name[:-len("_head")], num_classes=NUM_CLASSES, compile=False)
        model = full.head_model()
        _compile_like_frozen(model, jit_compile)
        x = rng.normal(size=(batch, *model.input.shape[1:])).astype(np.float32)
    elif name == "encoder_stats_ft1":
        model = keras_ser.EncoderStatsClassifier(keras_ser.backbones.speaker_encoder("resemblyzer"),
                                                 num_classes=NUM_CLASSES, fine_tune=1)
        model.compile(jit_compile=jit_compile)
        # Mel power (non-negative), padded with -1 (masked).
        x = _padded(rng.random((batch, args.frames, model.encoder.n_mels), dtype=np.float32), rng, pad_value=-1.0)
    else:
        raise ValueError(f"Unknown model: {name!r}")
    y = rng.integers(0, NUM_CLASSES, size=batch)
    return model, x, y, batch


def time_steps(model, x, y, steps):
    """`(warm-up seconds, median seconds per step)` of `model.train_on_batch(x, y)`."""
    start = time.perf_counter()
    model.train_on_batch(x, y)  # tracing (and XLA compilation) plus one step
    warmup = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns numpy values: the step has finished
        times.append(time.perf_counter() - start)
    return warmup, statistics.median(times)


def time_new_lengths(model, x, y, frames):
    """Seconds of one step on a batch of yet another length, after one step on a second length:
    padded batches of frames change length from batch to batch. Without XLA the second length
    relaxes the traced shape (`reduce_retracing`) and later lengths reuse it; XLA compiles
    every new shape."""
    model.train_on_batch(x[:, :frames - 10], y)
    start = time.perf_counter()
    model.train_on_batch(x[:, :frames - 20], y)
    return time.perf_counter() - start


def measure(name, args):
    import keras
    import numpy as np

    row = {"model": name}
    for jit_compile in (False, True):
        keras.utils.set_random_seed(args.seed)
        rng = np.random.default_rng(args.seed)  # the same weights and inputs for both settings
        model, x, y, batch = build(name, jit_compile, args, rng)
        steps = args.paper_steps if name == "cnn_sru_paper" else args.steps
        warmup, step = time_steps(model, x, y, steps)
        key = "xla" if jit_compile else "no_xla"
        row.update({"input_shape": list(x.shape), "batch": batch, "steps": steps,
                    f"{key}_s_per_step": round(step, 4), f"{key}_warmup_s": round(warmup, 2),
                    f"{key}_effective": bool(model.jit_compile)})
        if name in FRAME_MODELS:
            row[f"{key}_new_length_s"] = round(time_new_lengths(model, x, y, args.frames), 3)
        del model
        keras.backend.clear_session()
        gc.collect()
    row["ratio"] = round(row["xla_s_per_step"] / row["no_xla_s_per_step"], 2)
    return row


def auto_resolves_to():
    """What Keras' `jit_compile="auto"` gives a compiled zoo model on this machine and backend."""
    import keras

    import keras_ser

    model = keras_ser.build_model("sru", num_classes=NUM_CLASSES, sru_units=8, compile=False)
    model.compile(jit_compile="auto")
    value = bool(model.jit_compile)
    del model
    keras.backend.clear_session()
    return value


def machine():
    import keras

    info = {"machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "keras": keras.__version__, "backend": keras.backend.backend()}
    if info["backend"] == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["devices"] = sorted({device.device_type for device in tf.config.list_physical_devices()})
    elif info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = sorted({device.platform for device in jax.devices()})
    return info


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    info = machine()
    versions = ", ".join(f"{key} {info[key]}" for key in ("tensorflow", "jax") if key in info)
    print(f"{info['machine']}, {info['cpu_count']} cores, Python {info['python']}, {versions}, "
          f"Keras {info['keras']} (backend {info['backend']}, devices {'/'.join(info['devices'])})")
    paper = (f"; cnn_sru_paper: batch {args.paper_batch_size}, {args.paper_steps} timed steps"
             if "cnn_sru_paper" in args.models else "")
    print(f"batch {args.batch_size}, {args.steps} timed steps (median), seed {args.seed}{paper}", flush=True)

    rows = []
    for name in args.models:
        row = measure(name, args)
        rows.append(row)
        print(f"  {name}: no XLA {row['no_xla_s_per_step']:.3f} s/step, XLA {row['xla_s_per_step']:.3f} s/step "
              f"(warm-up {row['no_xla_warmup_s']:.1f} s / {row['xla_warmup_s']:.1f} s)", flush=True)

    header = (f"{'model':22s} {'input shape':>22s} {'batch':>5s} {'no XLA s/step':>14s} {'XLA s/step':>11s} "
              f"{'XLA/no XLA':>10s} {'warm-up no XLA / XLA s':>23s}")
    print(header)
    for row in rows:
        shape = "[" + ", ".join(str(d) for d in row["input_shape"]) + "]"
        warmups = f"{row['no_xla_warmup_s']:.1f} / {row['xla_warmup_s']:.1f}"
        effective = "" if row["xla_effective"] and not row["no_xla_effective"] else "  (XLA setting not applied)"
        print(f"{row['model']:22s} {shape:>22s} {row['batch']:>5d} {row['no_xla_s_per_step']:>14.3f} "
              f"{row['xla_s_per_step']:>11.3f} {row['ratio']:>10.2f} {warmups:>23s}{effective}")

    for row in rows:
        if "xla_new_length_s" in row:
            print(f"{row['model']}: one step at a new batch length (after one other new length): "
                  f"{row['no_xla_new_length_s']:.3f} s without XLA, {row['xla_new_length_s']:.3f} s with XLA")

    slower = sum(row["ratio"] > 1 for row in rows)
    recommended_xla = not slower > len(rows) / 2
    auto = auto_resolves_to()
    recommended_default = "auto" if auto == recommended_xla else recommended_xla
    print(f"XLA slower for {slower} of {len(rows)} models: recommended jit_compile on this machine: "
          f"{recommended_xla}; Keras' 'auto' gives {auto} here; recommended TrainConfig.jit_compile: "
          f"{recommended_default!r}")

    if args.json:
        result = {
            "command": "python benchmarks/jit_compile.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": info,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "seed": args.seed,
            "rows": rows,
            "xla_slower_for": slower,
            "models": len(rows),
            "recommended_xla": recommended_xla,
            "auto_resolves_to": auto,
            "recommended_default": recommended_default,
            "rule": "recommended_xla: False when XLA is slower for a majority of the models; recommended_default: "
                    "'auto' when Keras' 'auto' already resolves to recommended_xla here (it keeps jax.jit on "
                    "the JAX backend), else recommended_xla",
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
