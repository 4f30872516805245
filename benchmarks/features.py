"""Feature extraction throughput: tf_pipeline against librosa on EMO-DB.

Both compute the paper's 3-channel image (log-Mel, delta, delta-delta) for
every file, warm (one untimed pass first, which pays librosa's numba JIT and
TensorFlow's tracing). Three tf_pipeline modes are timed: one utterance per
call of a `tf.function`, padded batches of 32 (the serving signature's path),
and the tf.data pipeline from file paths (decoding included) with a parallel
map. Prints utterances per second and the ratio to librosa; asserts nothing.

    python benchmarks/features.py --data_dir /data/emodb/wav
"""

import argparse
import os
import platform
import sys
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emodb", "wav"),
                        help="EMO-DB wav folder (default: ../shared/data/emodb/wav beside the repo)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per mode; the best is reported (default 3)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files (0 = all)")
    args = parser.parse_args(argv)

    import librosa
    import tensorflow as tf

    import tf_pipeline
    from tf_pipeline import corpora

    corpus = corpora.emodb(args.data_dir)
    paths = corpus.paths[: args.limit or None]
    waveforms = [tf_pipeline.load_audio(path) for path in paths]
    n = len(waveforms)
    seconds = sum(w.size for w in waveforms) / 16000

    def run_librosa():
        for y in waveforms:
            mel = librosa.feature.melspectrogram(
                y=y, sr=16000, n_fft=512, win_length=400, hop_length=160, window="hamming",
                center=False, power=2.0, n_mels=60, fmin=0, fmax=8000)
            log_mel = np.log(mel + 1e-6)
            d1 = librosa.feature.delta(log_mel, width=5, mode="nearest")
            d2 = librosa.feature.delta(d1, width=5, mode="nearest")
            np.stack([log_mel, d1, d2], axis=-1)

    single = tf.function(tf_pipeline.feature_image, input_signature=[tf.TensorSpec([None], tf.float32)])

    def run_single():
        for y in waveforms:
            single(y).numpy()

    batched = tf.function(tf_pipeline.batch_feature_image,
                          input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])
    order = np.argsort([w.size for w in waveforms])  # similar lengths per batch, as a batcher would group them
    batches = []
    for start in range(0, n, 32):
        group = [waveforms[i] for i in order[start : start + 32]]
        padded = np.zeros((len(group), max(w.size for w in group)), np.float32)
        for row, w in enumerate(group):
            padded[row, : w.size] = w
        batches.append((padded, np.array([w.size for w in group], np.int32)))

    def run_batched():
        for padded, lengths in batches:
            batched(padded, lengths)[0].numpy()

    def run_dataset():
        for _ in tf_pipeline.feature_images(corpus, np.arange(n)).prefetch(tf.data.AUTOTUNE):
            pass

    modes = [
        ("librosa (numpy, one by one)", run_librosa),
        ("tf_pipeline, tf.function per utterance", run_single),
        ("tf_pipeline, padded batches of 32", run_batched),
        ("tf_pipeline, tf.data from files (decode included)", run_dataset),
    ]
    results = {}
    for name, fn in modes:
        fn()  # warm-up: JIT, tracing
        timings = [_timed(fn) for _ in range(args.repeats)]
        results[name] = (n / min(t[0] for t in timings), n / min(t[1] for t in timings))
    reference = results[modes[0][0]]
    print(f"{n} EMO-DB files, {seconds:.0f} s of audio; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, TensorFlow {tf.__version__}, librosa {librosa.__version__}")
    print(f"{'mode':52s} {'utt/s':>9s} {'x librosa':>10s} {'utt/CPU-s':>10s} {'x librosa':>10s}")
    for name, (rate, cpu_rate) in results.items():
        print(f"{name:52s} {rate:9.1f} {rate / reference[0]:10.2f} {cpu_rate:10.1f} {cpu_rate / reference[1]:10.2f}")
    print("utt/s: wall clock, best of the repeats (what a user waits for; other jobs on the machine lower it).")
    print("utt/CPU-s: utterances per second of CPU time used by this process, all threads together (less "
          "sensitive to other jobs).")
    return 0


def _timed(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


if __name__ == "__main__":
    sys.exit(main())
