"""Model inputs from precomputed feature arrays, in numpy only (no TensorFlow).

The GPU machines have Keras + JAX but no TensorFlow, so `tf_pipeline` cannot
run there. `experiments/gpu_features.py` computes the feature images of a
corpus with `tf_pipeline` on a machine that has TensorFlow and stores them in
one `.npz` file (`save_feature_arrays`); this module reads that file
(`load_feature_arrays`) and turns it into model input with numpy alone:

- `batch_segment_and_resize`: the N time segments of each utterance resized
  bilinearly, the same arithmetic as `tf_pipeline.batch_segment_and_resize`
  (gathers + linear interpolation, half-pixel centres, frequency axis first,
  the last segment absorbs the remainder), equal to it within float32
  rounding.
- `ArrayDataset`: a `keras.utils.PyDataset` of `(inputs, labels)` batches
  with seeded shuffling and the training levers of `tf_pipeline.augment`
  (SpecAugment masks, segment jitter, mixup) plus per-speaker normalisation
  and one-hot labels, as `tf_pipeline.make_dataset` has them.
- `SegmentDataset`: single segments labelled with their utterance's emotion
  (stage 1 of the paper recipe).
- `fold_data_fn(arrays)`: the `fold_data` callable of
  `keras_ser.training.loso.run_loso`, so the usual resumable LOSO runner
  works from the arrays; channel statistics come from the training speakers
  of each fold only (`tf_pipeline.normalization.channel_stats`, numpy).

The file format (`FORMAT`): `log_mel` float16 or float32 `[total_frames,
n_mels]` (every utterance's log-Mel frames, concatenated along time; the
delta and delta-delta channels are recomputed on load with the HTK formula of
`tf_pipeline.features.deltas`, which keeps EMO-DB at ~14 MB instead of ~47 MB)
or `images` `[total_frames, n_mels, 3]` (all three channels stored);
`offsets` int64 `[n + 1]` (utterance `i` is rows `offsets[i]:offsets[i+1]`),
`labels`, `speakers`, `paths` (file names), `class_names`, `corpus`,
`feature_config` (JSON) and `info` (JSON: how the file was made).

Example:

>>> arrays = load_feature_arrays(".gpu_data/emodb.npz")                   # doctest: +SKIP
>>> run_loso(arrays.corpus, TrainConfig(), "runs/gpu", feature_config=arrays.feature_config,
...          fold_data=fold_data_fn(arrays), tensorboard=False)           # doctest: +SKIP
"""

import dataclasses
import json
import os

import keras
import numpy as np

from tf_pipeline.config import MAX_SEGMENTS
from tf_pipeline.config import FeatureConfig
from tf_pipeline.corpora import Corpus
from tf_pipeline.corpora import Record
from tf_pipeline.normalization import ChannelStats
from tf_pipeline.normalization import channel_stats

FORMAT = "keras_ser.feature_arrays/1"
DEFAULT_SIZE = (227, 227)
STORES = ("log_mel", "images")


# ---------------------------------------------------------------------------
# Features: deltas (as tf_pipeline.features.deltas), segments and resizing.
# ---------------------------------------------------------------------------


def deltas(x, n=2, axis=0):
    """Regression deltas along `axis`, HTK formula, edges replicated (numpy).

    The arithmetic of `tf_pipeline.features.deltas`, in float32:
    `d_t = sum_{k=1..n} k * (x_{t+k} - x_{t-k}) / (2 * sum_{k=1..n} k^2)`.

    Example:

    >>> deltas(np.array([[0.0], [1.0], [2.0], [3.0]], np.float32))[:, 0]
    array([0.5, 0.8, 0.8, 0.5], dtype=float32)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer. Received: n={n!r}")
    x = np.moveaxis(np.asarray(x, np.float32), axis, 0)
    length = x.shape[0]
    extended = x[np.clip(np.arange(-n, length + n), 0, length - 1)]

    def shifted(k):
        return extended[n + k : n + k + length]

    result = shifted(1) - shifted(-1)
    for k in range(2, n + 1):
        result += np.float32(k) * (shifted(k) - shifted(-k))
    result = result / np.float32(2.0 * sum(k * k for k in range(1, n + 1)))
    return np.moveaxis(result, 0, axis)


def image_from_log_mel(log_mel, delta_width=2):
    """`[frames, n_mels]` log-Mel -> the `[n_mels, frames, 3]` feature image
    (log-Mel, delta, delta-delta), as `tf_pipeline.feature_image` stacks them."""
    mel = np.asarray(log_mel, np.float32)
    d1 = deltas(mel, delta_width, axis=0)
    d2 = deltas(d1, delta_width, axis=0)
    return np.stack([mel, d1, d2], axis=-1).transpose(1, 0, 2)


def check_n_segments(n_segments):
    """Validates N (1 <= N <= 5, a Python int) and returns it."""
    if isinstance(n_segments, bool) or not isinstance(n_segments, (int, np.integer)) or not (
        1 <= n_segments <= MAX_SEGMENTS
    ):
        raise ValueError(
            f"n_segments must be an integer between 1 and {MAX_SEGMENTS}. Received: n_segments={n_segments!r}"
        )
    return int(n_segments)


def _check_size(size):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                                 for s in size):
        raise ValueError(f"size must be (height, width) with positive integers. Received: size={size!r}")
    return int(size[0]), int(size[1])


def _interpolation(out_size, in_size):
    """Source indices (lower, upper) and float32 weights of a half-pixel bilinear
    resize, as `tf_pipeline.segments._interpolation` computes them."""
    in_size = np.asarray(in_size, np.float32)
    scale = in_size / np.float32(out_size)
    position = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale[..., None] - np.float32(0.5)
    floor = np.floor(position)
    lerp = position - floor
    last = in_size.astype(np.int32)[..., None] - 1
    lower = np.clip(floor.astype(np.int32), 0, np.maximum(last, 0))
    upper = np.maximum(np.minimum(np.ceil(position).astype(np.int32), last), 0)
    return lower, upper, lerp


def batch_segment_and_resize(images, n_segments, size=DEFAULT_SIZE):
    """N time segments of every image, each resized bilinearly to `size` (numpy).

    Equals `tf_pipeline.batch_segment_and_resize` on the same images (within
    float32 rounding): the N parts are equal and contiguous along time, the
    last one absorbs the remainder, and each is resized with half-pixel
    centres and no antialiasing, frequency axis first. The images are not
    padded: the frequency pass runs once over all their frames, concatenated.

    Args:
        images: sequence of float arrays `[n_mels, frames_i, channels]`
            (frames may differ; every image needs at least N frames).
        n_segments: int, N in 1..5.
        size: `(height, width)` of each segment. Defaults to `(227, 227)`.

    Returns:
        float32 `[batch, n_segments, height, width, channels]`.

    Example:

    >>> batch_segment_and_resize([np.zeros([60, 300, 3]), np.zeros([60, 120, 3])], 3).shape
    (2, 3, 227, 227, 3)
    """
    n_segments = check_n_segments(n_segments)
    height, width = _check_size(size)
    images = [np.asarray(image) for image in images]
    if not images:
        raise ValueError("images is empty; give at least one [n_mels, frames, channels] image")
    shapes = {image.shape[::2] for image in images}
    if any(image.ndim != 3 for image in images) or len(shapes) != 1:
        raise ValueError(
            "images must all have shape [n_mels, frames, channels] with the same n_mels and channels. "
            f"Received shapes: {sorted({image.shape for image in images})[:5]}"
        )
    frames = np.array([image.shape[1] for image in images], np.int64)
    if frames.min() < n_segments:
        raise ValueError(
            f"an utterance needs at least n_segments={n_segments} frames to be cut into {n_segments} segments "
            f"(each frame is 10 ms with the default config); received fewer. Frames: {int(frames.min())}"
        )
    n_mels, channels = images[0].shape[0], images[0].shape[2]
    batch = len(images)

    # Frequency axis first, over every frame of the batch at once:
    # [n_mels, sum T, C] -> [height, sum T, C].
    columns = np.concatenate([image.astype(np.float32, copy=False) for image in images], axis=1)
    f_lower, f_upper, f_lerp = _interpolation(height, n_mels)
    rows = np.take(columns, f_upper, axis=0)
    low = np.take(columns, f_lower, axis=0)
    rows -= low
    rows *= f_lerp[:, None, None]
    rows += low  # low + (high - low) * lerp, as tf_pipeline computes it
    del low

    # Time axis: every segment gathers its own columns, written in place into its output block.
    offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
    seg_len = frames // n_segments
    index = np.arange(n_segments)
    starts = seg_len[:, None] * index[None, :]  # [batch, N]
    lengths = np.where(index[None, :] == n_segments - 1, frames[:, None] - starts, seg_len[:, None])
    t_lower, t_upper, t_lerp = _interpolation(width, lengths)  # [batch, N, width]
    base = (offsets[:, None] + starts)[..., None]
    t_lower, t_upper = t_lower + base, t_upper + base
    out = np.empty([batch, n_segments, height, width, channels], np.float32)
    scratch = np.empty([height, width, channels], np.float32)
    for b in range(batch):
        for n in range(n_segments):
            block = out[b, n]
            np.take(rows, t_lower[b, n], axis=1, out=block, mode="clip")
            np.take(rows, t_upper[b, n], axis=1, out=scratch, mode="clip")
            scratch -= block
            scratch *= t_lerp[b, n][None, :, None]
            block += scratch
    return out


def segment_and_resize(image, n_segments, size=DEFAULT_SIZE):
    """One `[n_mels, frames, C]` image -> `[n_segments, height, width, C]` (numpy)."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"`image` must have shape [n_mels, frames, channels]. Received shape: {image.shape}")
    return batch_segment_and_resize([image], n_segments, size)[0]


def frame_sequences(images):
    """Feature images as zero-padded frame sequences `[B, max_frames, C * n_mels]`
    (the frame-level `sru` model's input, as `tf_pipeline.batch_frame_sequence`)."""
    frames = max(image.shape[1] for image in images)
    n_mels, channels = images[0].shape[0], images[0].shape[2]
    out = np.zeros([len(images), frames, channels * n_mels], np.float32)
    for row, image in enumerate(images):
        out[row, : image.shape[1]] = image.transpose(1, 2, 0).reshape(image.shape[1], channels * n_mels)
    return out


# ---------------------------------------------------------------------------
# Training levers (numpy counterparts of tf_pipeline.augment).
# ---------------------------------------------------------------------------


def _band_keep(length, count, max_width, rng):
    keep = np.ones([length], bool)
    positions = np.arange(length)
    for _ in range(count):
        width = min(int(rng.integers(0, max_width + 1)), length)
        start = int(rng.integers(0, max(length - width, 0) + 1))
        keep &= ~((positions >= start) & (positions < start + width))
    return keep


def spec_augment(image, rng, time_masks=2, time_width=20, freq_masks=2, freq_width=8):
    """SpecAugment-style masks on `[n_mels, frames, C]`, filled with each
    channel's mean over the utterance (as `tf_pipeline.augment.spec_augment`)."""
    fill = image.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    keep_time = _band_keep(image.shape[1], time_masks, time_width, rng)
    keep_freq = _band_keep(image.shape[0], freq_masks, freq_width, rng)
    keep = keep_freq[:, None, None] & keep_time[None, :, None]
    return np.where(keep, image, fill).astype(np.float32, copy=False)


def segment_jitter(image, rng, fraction=0.1, min_frames=5):
    """Trims a random share (up to `fraction`) of frames from each end, keeping
    at least `min_frames` (as `tf_pipeline.augment.segment_jitter`)."""
    frames = image.shape[1]
    most = min(int(np.float32(frames) * np.float32(fraction)), max((frames - min_frames) // 2, 0))
    start = int(rng.integers(0, most + 1))
    end = frames - int(rng.integers(0, most + 1))
    return image[:, start:end]


def mixup(inputs, labels, rng, alpha=0.2):
    """Mixes each example with another of the batch: `lam ~ Beta(alpha, alpha)`;
    `labels` are float `[B, num_classes]` (as `tf_pipeline.augment.mixup`)."""
    batch = inputs.shape[0]
    lam = rng.beta(alpha, alpha, size=batch).astype(np.float32)
    perm = rng.permutation(batch)
    lam_x = lam.reshape([batch] + [1] * (inputs.ndim - 1))
    mixed = lam_x * inputs + (np.float32(1.0) - lam_x) * inputs[perm]
    soft = lam[:, None] * labels + (np.float32(1.0) - lam[:, None]) * labels[perm]
    return mixed.astype(np.float32, copy=False), soft.astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Per-utterance training augmentation (jitter first, then masks), as
    `tf_pipeline.augment.make_augment` composes them."""

    time_masks: int = 0
    time_width: int = 20
    freq_masks: int = 0
    freq_width: int = 8
    jitter: float = 0.0

    @classmethod
    def from_config(cls, config):
        """The augmentation a `TrainConfig` asks for, or None when every lever is off."""
        augment = cls(config.time_masks, config.time_width, config.freq_masks, config.freq_width, config.jitter)
        return augment if augment else None

    def __bool__(self):
        return bool(self.time_masks or self.freq_masks or self.jitter)

    def __call__(self, image, rng):
        if self.jitter:
            image = segment_jitter(image, rng, self.jitter)
        if self.time_masks or self.freq_masks:
            image = spec_augment(image, rng, self.time_masks, self.time_width, self.freq_masks, self.freq_width)
        return image


# ---------------------------------------------------------------------------
# The feature file.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class FeatureArrays:
    """A corpus's feature images in memory, as read from a feature file.

    Attributes:
        corpus: a `tf_pipeline.corpora.Corpus` (record paths are the file
            names stored; labels, speakers and class names as in the file).
        feature_config: the `FeatureConfig` the images were computed with.
        images: list of float32 `[n_mels, frames, 3]` arrays, corpus order.
        info: dict, how the file was made.
        path: the file read (or None).
    """

    corpus: Corpus
    feature_config: FeatureConfig
    images: list
    info: dict = dataclasses.field(default_factory=dict)
    path: str = None

    @property
    def frames(self):
        return np.array([image.shape[1] for image in self.images], np.int64)

    def __len__(self):
        return len(self.images)


def save_feature_arrays(path, corpus, images, feature_config=None, dtype="float16", store="log_mel", info=None):
    """Writes the feature images of a corpus as one compressed `.npz` (`FORMAT`).

    Args:
        path: the `.npz` file to write (written to a temporary name, then
            renamed into place).
        corpus: the `Corpus` the images belong to (same order).
        images: sequence of `[n_mels, frames, 3]` arrays (e.g. from
            `tf_pipeline.feature_images`).
        feature_config: their `FeatureConfig` (default: the defaults).
        dtype: `"float16"` (default; 2 bytes a value) or `"float32"`.
        store: `"log_mel"` (default: channel 0 only; deltas recomputed on
            load) or `"images"` (all three channels).
        info: optional dict stored as JSON.

    Returns:
        The size of the file in bytes.
    """
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}. Received: store={store!r}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32'. Received: dtype={dtype!r}")
    feature_config = FeatureConfig.from_dict(feature_config) if feature_config is not None else FeatureConfig()
    images = list(images)
    if len(images) != len(corpus):
        raise ValueError(f"Expected one image per record ({len(corpus)}). Received {len(images)} images")
    frames = np.array([np.shape(image)[1] for image in images], np.int64)
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)
    columns = np.concatenate([np.asarray(image, np.float32).transpose(1, 0, 2) for image in images])  # [T, mels, 3]
    arrays = {"log_mel": columns[..., 0]} if store == "log_mel" else {"images": columns}
    arrays = {key: value.astype(dtype) for key, value in arrays.items()}
    tmp = f"{path}.tmp{os.getpid()}.npz"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(
        tmp,
        format=np.array(FORMAT),
        offsets=offsets,
        labels=corpus.labels.astype(np.int64),
        speakers=np.array([record.speaker for record in corpus.records], dtype=str),
        paths=np.array([os.path.basename(record.path) for record in corpus.records], dtype=str),
        class_names=np.array(list(corpus.class_names), dtype=str),
        corpus=np.array(corpus.name),
        feature_config=np.array(feature_config.to_json()),
        info=np.array(json.dumps({"dtype": dtype, "store": store, **(info or {})}, sort_keys=True)),
        **arrays,
    )
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_feature_arrays(path):
    """Reads a feature file written by `save_feature_arrays`. Returns `FeatureArrays`."""
    with np.load(path, allow_pickle=False) as data:
        fmt = str(data["format"]) if "format" in data.files else None
        if fmt != FORMAT:
            raise ValueError(f"{path} is not a keras-ser feature file ({FORMAT}). Received format: {fmt!r}")
        feature_config = FeatureConfig.from_json(str(data["feature_config"]))
        offsets = data["offsets"]
        if "images" in data.files:
            columns = data["images"].astype(np.float32)
            images = [columns[offsets[i] : offsets[i + 1]].transpose(1, 0, 2) for i in range(len(offsets) - 1)]
        else:
            log_mel = data["log_mel"].astype(np.float32)
            images = [image_from_log_mel(log_mel[offsets[i] : offsets[i + 1]], feature_config.delta_width)
                      for i in range(len(offsets) - 1)]
        records = tuple(
            Record(str(p), int(label), str(speaker))
            for p, label, speaker in zip(data["paths"], data["labels"], data["speakers"])
        )
        corpus = Corpus(str(data["corpus"]), records, tuple(str(name) for name in data["class_names"]))
        info = json.loads(str(data["info"])) if "info" in data.files else {}
    return FeatureArrays(corpus, feature_config, images, info, os.path.abspath(path))


# ---------------------------------------------------------------------------
# Datasets.
# ---------------------------------------------------------------------------


class _Source:
    """The images of some utterances, their labels and per-utterance normalisation,
    with the epoch-seeded augmentation the two datasets share."""

    def __init__(self, images, labels, num_classes, training, seed, augment, standardise):
        self.images = list(images)
        self.labels = np.asarray(labels, np.int64)
        if len(self.images) != len(self.labels) or not self.images:
            raise ValueError(
                f"Expected a non-empty list of images and one label each. Received {len(self.images)} images, "
                f"{len(self.labels)} labels"
            )
        self.num_classes = int(num_classes)
        self.training = bool(training)
        self.seed = int(seed)
        self.augment = augment if training else None
        self.standardise = standardise  # None or (mean [n, C], std [n, C]) per utterance
        self.epoch = 0

    def rng(self, *key):
        return np.random.default_rng([self.seed, self.epoch, *key])

    def order(self, count):
        """This epoch's order of `count` items (shuffled when training)."""
        if not self.training:
            return np.arange(count)
        return self.rng(1 << 20).permutation(count)

    def image(self, i):
        image = self.images[i]
        if self.standardise is not None:
            mean, std = self.standardise
            image = ((image - mean[i]) / std[i]).astype(np.float32)
        if self.augment:
            image = self.augment(image, self.rng(2 << 20, int(i)))
        return image

    def targets(self, rows, one_hot):
        labels = self.labels[rows]
        if one_hot:
            return np.eye(self.num_classes, dtype=np.float32)[labels]
        return labels


class _Batches(keras.utils.PyDataset):
    """What `ArrayDataset` and `SegmentDataset` share: a `_Source`, a batch count, the seeded
    order of the items of each batch, mixup of training batches and the epoch counter."""

    @property
    def num_batches(self):
        return self._num_batches

    def __len__(self):
        return self._num_batches

    def _items(self, index, count):
        """Indices (into `count` items in this epoch's order) of batch `index`."""
        if not 0 <= index < self._num_batches:
            raise IndexError(f"batch index {index} out of range [0, {self._num_batches})")
        return self.source.order(count)[index * self.batch_size : (index + 1) * self.batch_size]

    def _mix(self, inputs, labels, index):
        if self.mixup_alpha > 0:
            inputs, labels = mixup(inputs, labels, self.source.rng(3 << 20, index), self.mixup_alpha)
        return inputs, labels

    def on_epoch_end(self):
        self.source.epoch += 1


class ArrayDataset(_Batches):
    """Batches of `(inputs, labels)` from feature images, for `model.fit`/`predict`.

    The numpy counterpart of `tf_pipeline.make_dataset`: when `training`, the
    utterances are shuffled (a new seeded order every epoch) and augmented
    per utterance on the small image (`Augment`); batches are then cut into
    segments and resized (`batch_segment_and_resize`), or padded into frame
    sequences for `output="frames"`; mixup mixes training batches. Every
    random draw depends on `(seed, epoch, batch or utterance)` only, so the
    data are the same whatever `workers` is.

    Args:
        images: list of float32 `[n_mels, frames, 3]` images.
        labels: int class ids, one per image.
        num_classes: int.
        n_segments: int, N in 1..5 (ignored for `output="frames"`).
        batch_size: int. Defaults to `30`.
        training: bool. Shuffle and augment. Defaults to `False`.
        image_size: `(height, width)`. Defaults to `(227, 227)`.
        output: `"segments"` or `"frames"`.
        seed: int. Defaults to `0`.
        augment: an `Augment` (used only when `training`), or None.
        standardise: optional `(mean, std)` arrays `[n, C]`: per-utterance
            statistics (per-speaker normalisation).
        label_mode: `"int"` or `"one_hot"`.
        mixup_alpha: float; > 0 mixes training batches.
        drop_remainder: bool. Defaults to `False`.
        workers, use_multiprocessing, max_queue_size: `keras.utils.PyDataset`
            arguments (threads preparing batches ahead).

    Example:

    >>> data = ArrayDataset(arrays.images, arrays.corpus.labels, 7, n_segments=3)   # doctest: +SKIP
    >>> data[0][0].shape                                                            # doctest: +SKIP
    (30, 3, 227, 227, 3)
    """

    def __init__(self, images, labels, num_classes, n_segments=3, batch_size=30, training=False,
                 image_size=DEFAULT_SIZE, output="segments", seed=0, augment=None, standardise=None,
                 label_mode="int", mixup_alpha=0.0, drop_remainder=False, workers=1, use_multiprocessing=False,
                 max_queue_size=10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if output not in ("segments", "frames"):
            raise ValueError(f"output must be 'segments' or 'frames'. Received: output={output!r}")
        if label_mode not in ("int", "one_hot"):
            raise ValueError(f"label_mode must be 'int' or 'one_hot'. Received: label_mode={label_mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        if mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0. Received: mixup_alpha={mixup_alpha}")
        self.source = _Source(images, labels, num_classes, training, seed, augment, standardise)
        self.n_segments = check_n_segments(n_segments) if output == "segments" else None
        self.image_size = _check_size(image_size)
        self.output = output
        self.batch_size = batch_size
        self.mixup_alpha = float(mixup_alpha) if training else 0.0
        self.one_hot = label_mode == "one_hot" or self.mixup_alpha > 0
        count = len(self.source.labels)
        self._num_batches = count // batch_size if drop_remainder else -(-count // batch_size)
        if self._num_batches == 0:
            raise ValueError(f"drop_remainder with {count} utterances and batch_size={batch_size} leaves no batch")

    def __getitem__(self, index):
        source = self.source
        rows = self._items(index, len(source.labels))
        images = [source.image(i) for i in rows]
        if self.output == "segments":
            inputs = batch_segment_and_resize(images, self.n_segments, self.image_size)
        else:
            inputs = frame_sequences(images)
        return self._mix(inputs, source.targets(rows, self.one_hot), index)


class SegmentDataset(_Batches):
    """Batches of single segments `[B, height, width, C]`, each labelled with its
    utterance's emotion (stage 1 of the paper recipe).

    Every utterance gives its N segments; when `training` they are shuffled
    across utterances (a new seeded order every epoch), and each utterance's
    augmentation is drawn once per epoch, so its N segments come from the
    same augmented image. Mixup, when on, mixes segment batches.

    Arguments as `ArrayDataset`.
    """

    def __init__(self, images, labels, num_classes, n_segments=3, batch_size=30, training=False,
                 image_size=DEFAULT_SIZE, seed=0, augment=None, standardise=None, label_mode="int",
                 mixup_alpha=0.0, workers=1, use_multiprocessing=False, max_queue_size=10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        self.source = _Source(images, labels, num_classes, training, seed, augment, standardise)
        self.n_segments = check_n_segments(n_segments)
        self.image_size = _check_size(image_size)
        self.batch_size = batch_size
        self.mixup_alpha = float(mixup_alpha) if training else 0.0
        self.one_hot = label_mode == "one_hot" or self.mixup_alpha > 0
        self._count = len(self.source.labels) * self.n_segments
        self._num_batches = -(-self._count // batch_size)

    def __getitem__(self, index):
        source = self.source
        items = self._items(index, self._count)
        rows, segment = items // self.n_segments, items % self.n_segments
        utterances = np.unique(rows)
        resized = batch_segment_and_resize([source.image(i) for i in utterances], self.n_segments, self.image_size)
        inputs = resized[np.searchsorted(utterances, rows), segment]
        return self._mix(inputs, source.targets(rows, self.one_hot), index)


# ---------------------------------------------------------------------------
# LOSO folds from arrays.
# ---------------------------------------------------------------------------


def speaker_stats(arrays, speakers=None):
    """Per-speaker `ChannelStats` from all of each speaker's images (labels unused)."""
    ids = arrays.corpus.speaker_ids
    speakers = arrays.corpus.speakers if speakers is None else speakers
    return {s: channel_stats(arrays.images[i] for i in np.flatnonzero(ids == s)) for s in speakers}


def make_fold_data(arrays, fold, config, feature_config=None, workers=1):
    """The `FoldData` of one LOSO fold from `FeatureArrays`, without TensorFlow.

    The counterpart of `keras_ser.training.loso.make_fold_data`: channel
    statistics from `fold.train_indices` only (the model's `standardize`
    layer gets them) or, with `config.speaker_norm`, every speaker
    standardised with its own statistics and the model's layer the identity.

    Args:
        arrays: `FeatureArrays`.
        fold: a `tf_pipeline.folds.Fold` of `arrays.corpus`.
        config: a `TrainConfig`.
        feature_config: must equal the arrays' (checked) or be None.
        workers: threads preparing batches (`keras.utils.PyDataset`).
    """
    from keras_ser.training.recipes import FoldData

    if feature_config is not None and FeatureConfig.from_dict(feature_config) != arrays.feature_config:
        raise ValueError(
            f"feature_config {FeatureConfig.from_dict(feature_config)} differs from the one the arrays were "
            f"computed with ({arrays.feature_config}); recompute the feature file"
        )
    corpus = arrays.corpus
    parts = {"train": fold.train_indices, "validation": fold.validation_indices, "test": fold.test_indices}
    standardise = None
    if config.speaker_norm:
        ids = corpus.speaker_ids
        used = sorted({ids[i] for indices in parts.values() for i in indices})
        per_speaker = speaker_stats(arrays, used)
        mean = np.zeros([len(corpus), 3], np.float32)
        std = np.ones([len(corpus), 3], np.float32)
        for i in np.concatenate(list(parts.values())).astype(np.int64):
            mean[i], std[i] = per_speaker[ids[i]].mean, per_speaker[ids[i]].std
        standardise = (mean, std)
        stats = ChannelStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    else:
        stats = channel_stats(arrays.images[i] for i in fold.train_indices)
    augment = Augment.from_config(config)
    size = (config.image_size, config.image_size)

    def part_standardise(indices):
        return None if standardise is None else (standardise[0][indices], standardise[1][indices])

    def dataset(part, training):
        indices = parts[part]
        return ArrayDataset(
            [arrays.images[i] for i in indices], corpus.labels[indices], corpus.num_classes,
            n_segments=config.segments or 1, batch_size=config.batch_size, training=training, image_size=size,
            output=config.output, seed=config.seed, augment=augment, standardise=part_standardise(indices),
            label_mode=config.label_mode, mixup_alpha=config.mixup_alpha, workers=workers,
        )

    def segment_dataset(part, training):
        indices = parts[part]
        return SegmentDataset(
            [arrays.images[i] for i in indices], corpus.labels[indices], corpus.num_classes,
            n_segments=config.segments or 1, batch_size=config.batch_size, training=training, image_size=size,
            seed=config.seed, augment=augment, standardise=part_standardise(indices), label_mode=config.label_mode,
            mixup_alpha=config.mixup_alpha, workers=workers,
        )

    labels = {part: corpus.labels[indices] for part, indices in parts.items()}
    return FoldData(dataset, labels, list(corpus.class_names), (np.array(stats.mean), np.array(stats.std)),
                    segment_dataset=segment_dataset)


def fold_data_fn(arrays, workers=1):
    """The `fold_data` callable of `run_loso` / `run_fold` for `arrays`:
    `(corpus, fold, config, feature_config) -> FoldData`."""

    def fold_data(corpus, fold, config, feature_config=None):
        if corpus is not arrays.corpus and (corpus.name, len(corpus)) != (arrays.corpus.name, len(arrays)):
            raise ValueError(f"fold_data for {arrays.corpus.name} ({len(arrays)} utterances) received corpus "
                             f"{corpus.name} ({len(corpus)} utterances)")
        return make_fold_data(arrays, fold, config, feature_config, workers=workers)

    return fold_data
