"""Two MultiWorkerMirroredStrategy workers on localhost finish with identical weights."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = r'''
import json, os, sys
import numpy as np
import tf_pipeline
from keras_ser.training import TrainConfig, train_final

corpus = tf_pipeline.corpora.synthetic(sys.argv[1], n_speakers=3, per_class=2, emotions="WTN")
config = TrainConfig(model="cnn_sru", n_segments=2, image_size=67, sru_units=8, epochs=2, batch_size=6,
                     backbone_kwargs={"filters": [4, 4, 4, 4, 4], "fc_units": 8}, learning_rate=1e-3,
                     strategy="multi_worker")
result = train_final(corpus, config, verbose=1)
np.savez(sys.argv[2], *[np.asarray(w) for w in result.model.get_weights()])
print("losses", json.dumps(result.history["end_to_end"]["loss"]))
'''


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(tmp_path, synthetic_corpus):
    import tf_pipeline

    tf_pipeline.corpora.synthetic(str(tmp_path / "syn"), n_speakers=3, per_class=2, emotions="WTN")  # written once
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "syn"), str(tmp_path / f"w{index}.npz")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    outputs = [process.communicate(timeout=400)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    first, second = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(first.files) == len(second.files) > 10
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # Training happened: the weights moved away from initialisation (the loss was recorded per epoch).
    losses = [json.loads(line.split(" ", 1)[1]) for line in outputs[0].splitlines() if line.startswith("losses ")][0]
    assert len(losses) == 2 and all(np.isfinite(losses))
