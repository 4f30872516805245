"""SRU against LSTM and GRU of the same width: forward and training step, printed as time ratios.

The SRU paper (Lei et al. 2017) reports 5-9x over cuDNN LSTM on a GPU. This
measures what a machine at hand shows, with Keras layers on the current
backend: `keras_ser.layers.SRU` (fast form), `keras.layers.RNN(SRUCell)`
(the same function step by step), `keras.layers.LSTM` and `keras.layers.GRU`,
each `units` wide on `[batch, length, units]` inputs (as in the paper, where
4096-d FC7 vectors feed a 4096-unit SRU), returning the last output.

For every width and length it times, after one warm-up call (which traces
and compiles), the median of `--repeats` calls of
- forward: `model.predict_on_batch(x)`;
- train: `model.train_on_batch(x, y)` (SGD, mean squared error on the output),
and prints milliseconds per call and the ratios LSTM/SRU, GRU/SRU and
SRU-cell/SRU (above 1: the SRU is faster). Times are printed, never asserted.

Usage (one command; `--quick` for a small grid):

    python benchmarks/sru.py                       # widths 4096 256, lengths 5 50 500
    python benchmarks/sru.py --quick               # widths 256 1024, lengths 5 50
    python benchmarks/sru.py --backend jax --widths 4096 --lengths 5 50 500 --batch 30

The full grid at width 4096 and length 500 is a GPU job: on a 2-core CPU one
LSTM training step at that size takes minutes.
"""

import argparse
import os
import statistics
import sys
import time

LAYERS = ("sru", "sru_cell", "lstm", "gru")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time keras_ser.layers.SRU against LSTM and GRU (forward and training step).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[4096, 256],
                        help="Layer widths (units = input features).")
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 50, 500], help="Sequence lengths.")
    parser.add_argument("--batch", type=int, default=8, help="Batch size.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls per measurement (median).")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS,
                        help="Layers to time; ratios are taken against 'sru'.")
    parser.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                        help="Keras backend (default: KERAS_BACKEND or Keras' default).")
    parser.add_argument("--no-jit", action="store_true", help="Compile with jit_compile=False.")
    parser.add_argument("--quick", action="store_true",
                        help="Small grid for a quick look: widths 256 1024, lengths 5 50, 3 repeats.")
    args = parser.parse_args(argv)
    if args.quick:
        args.widths, args.lengths, args.repeats = [256, 1024], [5, 50], 3
    if "sru" not in args.layers:
        parser.error("--layers must include 'sru' (ratios are taken against it)")
    return args


def build(layer_name, units, length):
    import keras

    from keras_ser.layers import SRU
    from keras_ser.layers import SRUCell

    layer = {
        "sru": lambda: SRU(units),
        "sru_cell": lambda: keras.layers.RNN(SRUCell(units)),
        "lstm": lambda: keras.layers.LSTM(units),
        "gru": lambda: keras.layers.GRU(units),
    }[layer_name]()
    inputs = keras.Input(shape=(length, units), batch_size=None)
    return keras.Model(inputs, layer(inputs), name=layer_name)


def time_calls(function, repeats):
    function()  # warm-up: tracing and compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras
    import numpy as np

    print(f"backend={keras.backend.backend()} keras={keras.__version__} batch={args.batch} "
          f"repeats={args.repeats} jit_compile={not args.no_jit}")
    header = f"{'width':>6} {'length':>6} {'mode':>7} " + " ".join(f"{name + ' ms':>12}" for name in args.layers)
    ratios = [name for name in args.layers if name != "sru"]
    header += " " + " ".join(f"{name + '/sru':>12}" for name in ratios)
    print(header)
    rng = np.random.default_rng(0)
    for units in args.widths:
        for length in args.lengths:
            x = rng.normal(size=(args.batch, length, units)).astype("float32")
            y = rng.normal(size=(args.batch, units)).astype("float32")
            times = {mode: {} for mode in args.modes}
            for name in args.layers:
                model = build(name, units, length)
                model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=not args.no_jit)
                if "forward" in args.modes:
                    times["forward"][name] = time_calls(lambda: model.predict_on_batch(x), args.repeats)
                if "train" in args.modes:
                    times["train"][name] = time_calls(lambda: model.train_on_batch(x, y), args.repeats)
                del model
                keras.backend.clear_session()
            for mode in args.modes:
                row = f"{units:>6} {length:>6} {mode:>7} "
                row += " ".join(f"{1000 * times[mode][name]:>12.2f}" for name in args.layers)
                row += " " + " ".join(f"{times[mode][name] / times[mode]['sru']:>12.2f}" for name in ratios)
                print(row, flush=True)


if __name__ == "__main__":
    main()
