"""Runs openSMILE in a fresh interpreter: `python -P opensmile_worker.py < request.json`.

openSMILE's native library (`libSMILEapi`, loaded by `import opensmile`)
aborts the process with `malloc(): invalid size (unsorted)` when it runs in
a process that imported TensorFlow first (checked with opensmile 2.6.0 and
TensorFlow 2.21 on x86_64; importing opensmile before TensorFlow avoids it).
Since `import keras_ser` imports Keras and TensorFlow, `extract_functionals`
runs the extraction here, in a child interpreter that imports only
openSMILE and numpy. This file must therefore import nothing from keras_ser.

Request (JSON on stdin): `feature_set` (a member of `opensmile.FeatureSet`),
`paths`, `sampling_rate`, `num_workers`, `output` (an `.npz` path).
On success the worker writes `features`, `feature_names`, `files` and
`config_path` to `output` and exits 0; on failure it prints one line
`<ExceptionType>: <message>` on stderr and exits 1.
"""

import json
import sys


def main():
    request = json.load(sys.stdin)
    import numpy as np
    import opensmile

    smile = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, request["feature_set"]),
        feature_level=opensmile.FeatureLevel.Functionals,
        sampling_rate=request["sampling_rate"],
        resample=True,
        mixdown=True,
        num_workers=request["num_workers"],
    )
    frame = smile.process_files(request["paths"])
    np.savez(
        request["output"],
        features=frame.to_numpy(dtype=np.float32),
        feature_names=np.array([str(name) for name in frame.columns]),
        files=np.array([str(path) for path in frame.index.get_level_values("file")]),
        config_path=np.array(str(smile.config_path)),
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # reported to the parent, which raises it with context
        print(f"{type(error).__name__}: {error}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
