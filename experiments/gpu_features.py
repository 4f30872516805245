#!/usr/bin/env python
"""Feature images of a corpus, computed with tf_pipeline, in one `.npz` for the GPU machine.

A GPU machine may have Keras + JAX but no TensorFlow (docs/gpu.md), so
tf_pipeline cannot compute features there. Run this here (TensorFlow
installed); it writes the log-Mel frames of every utterance (float16,
concatenated along time), the labels, speakers, file names, class names and
the FeatureConfig into `.gpu_data/<corpus>.npz`. On the GPU machine
`keras_ser.training.feature_file` computes the delta channels, cuts and
resizes the segments with numpy (the arithmetic of `tf_pipeline.array_math`,
which tf_pipeline itself runs in TensorFlow ops), and
`experiments/gpu_loso.py` runs LOSO from it.
Channel statistics are not stored: they are computed per fold from the
training speakers only.

It prints the file size and, with the wheels in `.whl/`, the total that
`run(carry=[".whl", ".gpu_data"])` carries against the 64 MiB limit.

Examples:

    .venv/bin/python experiments/gpu_features.py --data_dir=/data/emodb/wav   # -> .gpu_data/emodb.npz
    .venv/bin/python experiments/gpu_features.py --corpus=synthetic --data_dir=/tmp/synthetic \\
        --out=/tmp/synthetic.npz
"""

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_EMODB = os.path.join(ROOT, "..", "shared", "data", "emodb", "wav")
CARRY_LIMIT_MIB = 64.0


def folder_bytes(path):
    """Bytes of the files under `path` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


def compute_images(corpus, feature_config=None):
    """`[n_mels, frames, 3]` float32 numpy images of every record, corpus order (tf_pipeline)."""
    import tensorflow as tf

    import tf_pipeline

    dataset = tf_pipeline.feature_images(corpus, config=feature_config)
    return [image.numpy() for image, _, _ in dataset.prefetch(tf.data.AUTOTUNE)]


def export(corpus, path, feature_config=None, dtype="float16", store="log_mel", source=None):
    """Computes the feature images of `corpus` and writes them to `path`. Returns the file size in bytes."""
    import tensorflow as tf

    from keras_ser.training import feature_file
    from tf_pipeline.config import FeatureConfig

    feature_config = FeatureConfig.from_dict(feature_config) if feature_config is not None else FeatureConfig()
    images = compute_images(corpus, feature_config)
    info = {"tensorflow": tf.__version__, "source": source, "made_by": "experiments/gpu_features.py"}
    return feature_file.save_feature_arrays(path, corpus, images, feature_config, dtype=dtype, store=store,
                                            info=info)


def load_corpus(name, data_dir):
    from tf_pipeline import corpora

    if name == "synthetic":
        return corpora.synthetic(data_dir or os.path.join(ROOT, ".cache", "synthetic"))
    return corpora.READERS[name](data_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="emodb", choices=["emodb", "casia", "ravdess", "emovo", "dir", "csv", "synthetic"])
    parser.add_argument("--data_dir", default=None, help=f"Corpus folder (default for emodb: {DEFAULT_EMODB}).")
    parser.add_argument("--out", default=None, help="The .npz to write (default .gpu_data/<corpus>.npz).")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                        help="Storage precision of the log-Mel values (float16: ~14 MB for EMO-DB).")
    parser.add_argument("--store", default="log_mel", choices=["log_mel", "images"],
                        help="log_mel: channel 0 only, deltas computed on load (3x smaller); images: all 3.")
    parser.add_argument("--whl_dir", default=os.path.join(ROOT, ".whl"), help="Wheels carried along (for the size check).")
    args = parser.parse_args(argv)

    data_dir = args.data_dir or (DEFAULT_EMODB if args.corpus == "emodb" else None)
    out = args.out or os.path.join(ROOT, ".gpu_data", f"{args.corpus}.npz")
    start = time.time()
    corpus = load_corpus(args.corpus, data_dir)
    print(corpus.summary())
    size = export(corpus, out, dtype=args.dtype, store=args.store,
                  source=os.path.abspath(data_dir) if data_dir else None)
    print(f"wrote {out}: {size / 2**20:.1f} MiB ({args.store}, {args.dtype}) in {time.time() - start:.0f} s")

    gpu_data = os.path.join(ROOT, ".gpu_data")  # what run(carry=[".whl", ".gpu_data"]) carries
    data_dir_bytes = folder_bytes(gpu_data)
    wheel_bytes = folder_bytes(args.whl_dir)
    total = (data_dir_bytes + wheel_bytes) / 2**20
    print(f"carry: {gpu_data} {data_dir_bytes / 2**20:.1f} MiB + "
          f"{args.whl_dir} {wheel_bytes / 2**20:.1f} MiB = {total:.1f} MiB of {CARRY_LIMIT_MIB:.0f} MiB"
          + ("" if wheel_bytes else " (no wheels there yet: see docs/gpu.md)"))
    if total > CARRY_LIMIT_MIB:
        print("WARNING: over the carry limit; use --dtype=float16 --store=log_mel or carry less", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
