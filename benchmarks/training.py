"""Training throughput: features computed on the fly against cached tensors.

Trains the same model for the same number of steps twice in one process:
(a) on the tf.data pipeline of `tf_pipeline.make_dataset` with no cache, so
every step decodes the WAV files, computes the log-Mel / delta images, cuts
and resizes the segments; (b) on the very same batches, computed once and
held in memory. Prints segments per second for both and the share of the
step that the input pipeline costs: `1 - rate(a) / rate(b)`. The goal is
under 10%. A third mode is `make_dataset`'s default: the small feature
images cached after the first epoch, segments cut and resized every step.
Asserts nothing.

    python benchmarks/training.py --data_dir /data/emodb/wav --preset=paper --steps=6
    python benchmarks/training.py --preset=small --steps=20      # synthetic corpus
"""

import argparse
import os
import platform
import sys
import time

PRESETS = {
    # The paper's network: AlexNet (caffe) at 227x227, SRU 4096.
    "paper": dict(image_size=227, sru_units=4096, backbone_kwargs=None),
    # The demo's network: narrow AlexNet at 67x67.
    "small": dict(image_size=67, sru_units=64, backbone_kwargs={"filters": [16, 32, 48, 48, 32], "fc_units": 128}),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=None, help="EMO-DB wav folder; default: the synthetic corpus")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model size (default small)")
    parser.add_argument("--n_segments", type=int, default=3, help="segments per utterance (default 3)")
    parser.add_argument("--batch_size", type=int, default=30, help="utterances per batch (default 30)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per mode (default 10)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_ser
    import tf_pipeline

    if args.data_dir:
        corpus = tf_pipeline.corpora.emodb(args.data_dir)
    else:
        corpus = tf_pipeline.corpora.synthetic(os.path.join(os.path.expanduser("~"), ".cache", "keras_ser",
                                                            "synthetic"), emotions="WTFN")
    preset = PRESETS[args.preset]
    size = (preset["image_size"], preset["image_size"])
    model = keras_ser.build_model(n_segments=args.n_segments, num_classes=corpus.num_classes,
                                  sru_units=preset["sru_units"], image_size=preset["image_size"],
                                  backbone_kwargs=preset["backbone_kwargs"])
    warmup = 3
    total = args.steps + warmup

    def on_the_fly():
        dataset = tf_pipeline.make_dataset(corpus, None, args.n_segments, args.batch_size, training=True,
                                           image_size=size, cache=False, drop_remainder=True)
        return dataset.repeat().take(total)

    # The same batches, computed once and held in memory.
    cached_batches = [(x.numpy(), y.numpy()) for x, y in on_the_fly()]
    cached = tf.data.Dataset.from_generator(
        lambda: iter(cached_batches),
        output_signature=(tf.TensorSpec([None, args.n_segments, *size, 3], tf.float32),
                          tf.TensorSpec([None], tf.int64)))

    def rate(dataset):
        iterator = iter(dataset)
        for _ in range(warmup):  # tracing and the first steps
            model.train_on_batch(*next(iterator))
        segments = 0
        start = time.perf_counter()
        for x, y in iterator:
            model.train_on_batch(x, y)
            segments += int(x.shape[0]) * args.n_segments
        return segments / (time.perf_counter() - start)

    def feature_cache():
        # make_dataset's default: the small feature images cached after the first epoch; segments and
        # resizing still computed every step. One untimed pass fills the cache.
        dataset = tf_pipeline.make_dataset(corpus, None, args.n_segments, args.batch_size, training=True,
                                           image_size=size, cache=True, drop_remainder=True)
        for _ in dataset:
            pass
        return dataset.repeat().take(total)

    # Every batch has the same shape (drop_remainder), so one trace serves all steps. The reference
    # runs first and last; the better of its two rates counts (so warm-up favours neither side).
    cached_rate = rate(cached.prefetch(2))
    fly_rate = rate(on_the_fly())
    cache_rate = rate(feature_cache())
    cached_rate = max(cached_rate, rate(cached.prefetch(2)))
    print(f"{corpus.name}: {len(corpus)} utterances; preset {args.preset} ({model.count_params() / 1e6:.1f} M "
          f"parameters, {size[0]}x{size[1]}), N={args.n_segments}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"{'input':46s} {'segments/s':>11s}")
    print(f"{'segment tensors in memory (reference)':46s} {cached_rate:11.1f}")
    for name, value in (("tf.data, features on the fly, no cache", fly_rate),
                        ("tf.data, feature cache (make_dataset default)", cache_rate)):
        print(f"{name:46s} {value:11.1f}   input pipeline share of the step: {100 * (1 - value / cached_rate):5.1f}%"
              f"  (ratio {value / cached_rate:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
