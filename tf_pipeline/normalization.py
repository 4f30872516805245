"""Per-channel statistics for standardising feature images.

Where the statistics come from: the training speakers of a fold only
(never the test speaker, whose audio stays unseen). They are computed over
every frame and Mel band of the small (pre-resize) feature images of the
training utterances, one mean and standard deviation per channel (log-Mel,
delta, delta-delta).

How they travel: `keras_ser.set_channel_stats(model, stats.mean, stats.std)`
stores them as non-trainable weights of the model's first layer
(`standardize`), so `.keras` files and exported SavedModels standardise
their raw input themselves and serving needs nothing else.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """Mean and standard deviation per channel, as float lists of length C."""

    mean: tuple
    std: tuple
    count: int = 0

    def to_dict(self):
        return {"mean": list(self.mean), "std": list(self.std), "count": int(self.count)}

    @classmethod
    def from_dict(cls, config):
        return cls(tuple(config["mean"]), tuple(config["std"]), int(config.get("count", 0)))


def channel_stats(images, min_std=1e-6):
    """Per-channel mean and std over an iterable of `[n_mels, frames, C]` images.

    Accumulates in float64 (sum and sum of squares), so any number of
    utterances can stream through.

    Args:
        images: iterable of arrays or tensors `[n_mels, frames, C]`, or of
            `(image, num_frames)` pairs for padded images (only the first
            `num_frames` columns count).
        min_std: float. Lower bound of the returned std. Defaults to `1e-6`.

    Returns:
        A `ChannelStats`.

    Example:

    >>> stats = channel_stats([np.ones([60, 10, 3]), np.zeros([60, 10, 3])])
    >>> stats.mean, stats.std
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """
    total = total_sq = None
    count = 0
    for item in images:
        if isinstance(item, tuple):
            image, frames = item
            image = np.asarray(image)[:, : int(frames)]
        else:
            image = np.asarray(item)
        values = image.reshape(-1, image.shape[-1]).astype(np.float64)
        if total is None:
            total = np.zeros(values.shape[1])
            total_sq = np.zeros(values.shape[1])
        total += values.sum(axis=0)
        total_sq += np.square(values).sum(axis=0)
        count += values.shape[0]
    if not count:
        raise ValueError("channel_stats needs at least one non-empty image. Received none")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return ChannelStats(tuple(float(m) for m in mean), tuple(float(max(s, min_std)) for s in std), count)


# The statistics of a model whose input is already standardised (per-speaker normalisation).
IDENTITY = ChannelStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def utterance_stats(speakers, speaker_stats):
    """Per-utterance `(mean, std)` from the statistics of each utterance's speaker.

    Args:
        speakers: the speaker of each utterance (a sequence of str).
        speaker_stats: dict `speaker -> ChannelStats`.

    Returns:
        float32 arrays `mean`, `std`, each `[len(speakers), C]`.

    Example:

    >>> stats = {"03": ChannelStats((1.0, 2.0), (0.5, 0.5))}
    >>> utterance_stats(["03", "03"], stats)[0]
    array([[1., 2.],
           [1., 2.]], dtype=float32)
    """
    missing = sorted(set(speakers) - set(speaker_stats))
    if missing:
        raise ValueError(f"speaker_stats has no statistics for speaker(s) {missing}")
    mean = np.array([speaker_stats[speaker].mean for speaker in speakers], np.float32)
    std = np.array([speaker_stats[speaker].std for speaker in speakers], np.float32)
    return mean, std
