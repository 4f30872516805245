"""Mono waveforms of different lengths as one zero-padded batch and their lengths (numpy only).

The exported `serving_default` signature, the warmup file, the serving
clients and the speaker statistics of `keras_ser.adaptation` all take a
batch in this form: `waveforms` float32 `[batch, samples]` with zeros after
each row's end, `num_samples` int32 `[batch]`. The models mask the padding,
so a row gives the same result as when it is alone.
"""

import numpy as np


def pad_waveforms(waveforms):
    """`(batch, lengths)`: float32 `[n, longest]` zero-padded, int32 `[n]`.

    Args:
        waveforms: a non-empty sequence of mono 1-D arrays (any float or int
            dtype, converted to float32). An empty waveform is kept as a row
            of length 0; the batch has at least one column.

    Returns:
        `(batch, lengths)` numpy arrays.

    Raises:
        ValueError: `waveforms` is empty or a waveform is not 1-D.

    Example:

    >>> batch, lengths = pad_waveforms([np.ones(3), np.ones(1)])
    >>> batch.tolist(), lengths.tolist()
    ([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], [3, 1])
    """
    waveforms = [np.asarray(w, dtype=np.float32) for w in waveforms]
    if not waveforms:
        raise ValueError("waveforms is empty; expected at least one mono 1-D array")
    for index, waveform in enumerate(waveforms):
        if waveform.ndim != 1:
            raise ValueError(f"waveforms[{index}] must be a mono 1-D array. Received shape: {waveform.shape}")
    lengths = np.array([len(w) for w in waveforms], np.int32)
    batch = np.zeros((len(waveforms), max(int(lengths.max()), 1)), np.float32)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    return batch, lengths
