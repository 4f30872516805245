"""What a channel copy adds to feature extraction: files/s with and without each kind, in one process.

`keras_ser.training.frozen.extract_features` of the multilingual preset's
model (`encoder_stats` with the speech front end) on `--files` EMO-DB
utterances in length order, once as read (the reference) and once through
each kind of `keras_ser.training.channel_copies` (`transform=`, what
`keras-ser loso --channel_copies=...` runs for every copy); also the
transform alone on the same waveforms. One untimed pass first traces the
compiled call. Median of `--rounds`; ratios against the reference. Asserts
nothing.

    python benchmarks/channel_copies.py --data_dir DATA_DIR --files 96 --rounds 3
"""

import argparse
import sys
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder")
    parser.add_argument("--files", type=int, default=96, help="utterances, shortest first (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each setting (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    import tf_pipeline
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from keras_ser.training import frozen
    from keras_ser.training.channel_copies import CHANNEL_KINDS
    from keras_ser.training.channel_copies import heard_through
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.fitting import build_model_for_config
    from tf_pipeline.config import FrontEndConfig

    corpus = tf_pipeline.corpora.emodb(args.data_dir)
    indices = frozen.length_order(corpus)[: args.files]
    feature_config = MelFramesConfig(front_end=FrontEndConfig())
    model = build_model_for_config(TrainConfig(model="encoder_stats", recipe="probe"), list(corpus.class_names),
                                   feature_config)
    function = frozen.features_function(model)
    waveforms = [np.asarray(tf_pipeline.load_audio(corpus.records[i].path, feature_config)) for i in indices]

    def extraction(kind):
        transform = None if kind is None else (lambda waveform: heard_through(waveform, kind, 0))
        start = time.perf_counter()
        frozen.extract_features(model, corpus, indices, function=function, transform=transform)
        return time.perf_counter() - start

    def transform_alone(kind):
        start = time.perf_counter()
        for waveform in waveforms:
            heard_through(waveform, kind, 0)
        return time.perf_counter() - start

    extraction(None)  # traces the compiled call for the batch shapes met
    settings = [None, *CHANNEL_KINDS]
    times = {str(kind): [] for kind in settings}
    alone = {kind: [] for kind in CHANNEL_KINDS}
    for index in range(args.rounds):
        for kind in settings:
            times[str(kind)].append(extraction(kind))
        for kind in CHANNEL_KINDS:
            alone[kind].append(transform_alone(kind))
        print(f"round {index + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    reference = float(np.median(times["None"]))
    print(f"\n{len(indices)} EMO-DB utterances, {sum(map(len, waveforms)) / 16000:.0f} s of audio")
    print("\n| features of | extraction s | files/s | x the reference | the transform alone s |")
    print("|---|---:|---:|---:|---:|")
    rows = {}
    for kind in settings:
        median = float(np.median(times[str(kind)]))
        transform = None if kind is None else float(np.median(alone[kind]))
        rows[str(kind)] = {"extraction_s": median, "files_per_s": len(indices) / median,
                           "ratio": median / reference, "transform_s": transform}
        print(f"| {'the audio as read (reference)' if kind is None else f'a copy: {kind}'} | {median:.2f} | "
              f"{len(indices) / median:.1f} | {median / reference:.2f} | "
              f"{'-' if transform is None else f'{transform:.2f}'} |")
    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}")
    if args.json:
        host.write_json(args.json, {"command": host.command_line("channel_copies.py",
                                                                 sys.argv[1:] if argv is None else argv),
                                    "machine": machine, "files": len(indices), "rows": rows, "times": times})
    return 0


if __name__ == "__main__":
    sys.exit(main())
