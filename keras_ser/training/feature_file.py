"""Training from a feature file, without TensorFlow (the GPU path).

The GPU machines have Keras + JAX but no TensorFlow, so `tf_pipeline` cannot
run there. `experiments/gpu_features.py` computes the feature images of a
corpus with `tf_pipeline` on a machine that has TensorFlow and stores them in
one `.npz` file (`save_feature_arrays`); this module reads that file
(`load_feature_arrays`) and feeds `model.fit` from it:

- `ArrayDataset`: a `keras.utils.PyDataset` of `(inputs, labels)` batches,
  what `tf_pipeline.make_dataset` yields, with seeded shuffling, the
  training levers and per-speaker normalisation.
- `SegmentDataset`: single segments labelled with their utterance's emotion
  (stage 1 of the paper recipe).
- `fold_data_fn(arrays)`: the `fold_data` callable of
  `keras_ser.training.loso.run_loso`, so the usual resumable LOSO runner
  works from the file (`loso.build_fold_data`: channel statistics from the
  training speakers of each fold only).

Every step of the arithmetic (delta channels, segments and bilinear resize,
frame sequences, SpecAugment, segment jitter, mixup, standardisation) is
`tf_pipeline.array_math`, the same functions the TensorFlow pipeline runs,
here on numpy arrays (`array_math.NUMPY`); this module only reads, pads,
orders and batches. Random draws come from numpy `Generator`s seeded by
`(seed, epoch, batch or utterance)`, so the data do not depend on `workers`.

The file format (`FORMAT`): `log_mel` float16 or float32 `[total_frames,
n_mels]` (every utterance's log-Mel frames, concatenated along time; the
delta and delta-delta channels are computed on load, which keeps EMO-DB at
~14 MB instead of ~47 MB) or `images` `[total_frames, n_mels, 3]` (all three
channels stored); `offsets` int64 `[n + 1]` (utterance `i` is rows
`offsets[i]:offsets[i+1]`), `labels`, `speakers`, `paths` (file names),
`class_names`, `corpus`, `feature_config` (JSON) and `info` (JSON: how the
file was made).

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

from keras_ser.training.loso import build_fold_data
from tf_pipeline.atomic import write_atomic
from tf_pipeline import array_math
from tf_pipeline.array_math import NUMPY
from tf_pipeline.array_math import Augment
from tf_pipeline.config import DEFAULT_SIZE
from tf_pipeline.config import FeatureConfig
from tf_pipeline.config import check_batching
from tf_pipeline.config import check_frames
from tf_pipeline.config import check_n_segments
from tf_pipeline.config import check_size
from tf_pipeline.corpora import Corpus
from tf_pipeline.corpora import Record
from tf_pipeline.normalization import channel_stats
from tf_pipeline.normalization import utterance_stats

FORMAT = "keras_ser.feature_arrays/1"
STORES = ("log_mel", "images")


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
        store: `"log_mel"` (default: channel 0 only; deltas computed on
            load) or `"images"` (all three channels).
        info: optional dict stored as JSON.

    Returns:
        The size of the file in bytes.

    Example:

    >>> images = [image.numpy() for image, _, _ in tf_pipeline.feature_images(corpus)]   # doctest: +SKIP
    >>> save_feature_arrays(".gpu_data/emodb.npz", corpus, images)                         # doctest: +SKIP
    14466171
    """
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}. Received: store={store!r}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32'. Received: dtype={dtype!r}")
    feature_config = FeatureConfig.coerce(feature_config)
    images = list(images)
    if len(images) != len(corpus):
        raise ValueError(f"Expected one image per record ({len(corpus)}). Received {len(images)} images")
    frames = np.array([np.shape(image)[1] for image in images], np.int64)
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)
    columns = np.concatenate([np.asarray(image, np.float32).transpose(1, 0, 2) for image in images])  # [T, mels, 3]
    arrays = {"log_mel": columns[..., 0]} if store == "log_mel" else {"images": columns}
    arrays = {key: value.astype(dtype) for key, value in arrays.items()}
    write_atomic(path, lambda stream: np.savez_compressed(
        stream,
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
    ))
    return os.path.getsize(path)


def load_feature_arrays(path):
    """Reads a feature file written by `save_feature_arrays`. Returns `FeatureArrays`.

    With `store="log_mel"` the delta channels are computed here
    (`array_math.image_from_log_mel`, the formula of `tf_pipeline.feature_image`).

    Example:

    >>> arrays = load_feature_arrays(".gpu_data/emodb.npz")        # doctest: +SKIP
    >>> len(arrays), arrays.images[0].shape                        # doctest: +SKIP
    (535, (60, 195, 3))
    """
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
            images = [array_math.image_from_log_mel(NUMPY, log_mel[offsets[i] : offsets[i + 1]],
                                                    feature_config.delta_width)
                      for i in range(len(offsets) - 1)]
        records = tuple(
            Record(str(p), int(label), str(speaker))
            for p, label, speaker in zip(data["paths"], data["labels"], data["speakers"])
        )
        corpus = Corpus(str(data["corpus"]), records, tuple(str(name) for name in data["class_names"]))
        info = json.loads(str(data["info"])) if "info" in data.files else {}
    return FeatureArrays(corpus, feature_config, images, info, os.path.abspath(path))


# ---------------------------------------------------------------------------
# Batches of model input (what tf.data's padded_batch + the pipeline's last map do).
# ---------------------------------------------------------------------------


def pad_images(images):
    """Feature images of different lengths as one zero-padded batch.

    Args:
        images: non-empty sequence of float arrays `[n_mels, frames_i, C]`
            with the same `n_mels` and `C`.

    Returns:
        `(images, num_frames)`: float32 `[batch, n_mels, max_frames, C]` and
        int32 `[batch]`, as `tf.data`'s `padded_batch` gives them.

    Example:

    >>> padded, frames = pad_images([np.ones([60, 5, 3]), np.ones([60, 2, 3])])
    >>> padded.shape, frames.tolist()
    ((2, 60, 5, 3), [5, 2])
    """
    images = [np.asarray(image) for image in images]
    if not images:
        raise ValueError("images is empty; give at least one [n_mels, frames, channels] image")
    if any(image.ndim != 3 for image in images) or len({image.shape[::2] for image in images}) != 1:
        raise ValueError(
            "images must all have shape [n_mels, frames, channels] with the same n_mels and channels. "
            f"Received shapes: {sorted({image.shape for image in images})[:5]}"
        )
    frames = np.array([image.shape[1] for image in images], np.int32)
    n_mels, channels = images[0].shape[0], images[0].shape[2]
    padded = np.zeros([len(images), n_mels, int(frames.max()), channels], np.float32)
    for row, image in enumerate(images):
        padded[row, :, : image.shape[1]] = image
    return padded, frames


def batch_segments(images, n_segments, size=DEFAULT_SIZE):
    """The N resized segments of every image: `[batch, n_segments, height, width, C]`.

    `array_math.batch_segment_and_resize` on the padded batch, so it equals
    `tf_pipeline.batch_segment_and_resize` within float32 rounding.

    Example:

    >>> batch_segments([np.zeros([60, 300, 3]), np.zeros([60, 120, 3])], 3).shape
    (2, 3, 227, 227, 3)
    """
    n_segments = check_n_segments(n_segments)
    size = check_size(size)
    padded, frames = pad_images(images)
    check_frames(frames.min(), n_segments)
    return array_math.batch_segment_and_resize(NUMPY, padded, frames, n_segments, size)


def frame_sequences(images):
    """Feature images as zero-padded frame sequences `[B, max_frames, C * n_mels]`
    (the `sru` model's input, `array_math.frame_sequence`)."""
    return array_math.frame_sequence(NUMPY, pad_images(images)[0])


class _Source:
    """The images of some utterances, their labels and per-utterance statistics,
    with the epoch-seeded augmentation the two datasets share."""

    def __init__(self, images, labels, num_classes, training, seed, augment, speakers, speaker_stats):
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
        self.stats = None
        if speaker_stats is not None:
            if speakers is None or len(speakers) != len(self.images):
                received = None if speakers is None else f"{len(speakers)} speakers"
                raise ValueError(f"speaker_stats needs the speaker of each of the {len(self.images)} images. "
                                 f"Received: {received}")
            self.stats = utterance_stats(list(speakers), speaker_stats)
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
        if self.stats is not None:
            image = array_math.standardise(image, self.stats[0][i], self.stats[1][i])
        if self.augment:
            rng = self.rng(2 << 20, int(i))
            image, _ = self.augment(NUMPY, image, image.shape[1], lambda high: int(rng.integers(0, high)))
        return image

    def targets(self, rows, one_hot):
        labels = self.labels[rows]
        if one_hot:
            return np.eye(self.num_classes, dtype=np.float32)[labels]
        return labels


class _Batches(keras.utils.PyDataset):
    """What `ArrayDataset` and `SegmentDataset` share: arguments, a `_Source`, a batch count,
    the seeded order of the items of each batch, mixup of training batches and the epoch counter."""

    def __init__(self, images, labels, num_classes, output, n_segments, batch_size, training, image_size, seed,
                 augment, speakers, speaker_stats, label_mode, mixup_alpha, workers, use_multiprocessing,
                 max_queue_size, outputs):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.n_segments = check_batching(output, n_segments, batch_size, label_mode, mixup_alpha, outputs)
        self.source = _Source(images, labels, num_classes, training, seed, augment, speakers, speaker_stats)
        self.image_size = check_size(image_size)
        self.output = output
        self.batch_size = batch_size
        self.mixup_alpha = float(mixup_alpha) if training else 0.0
        self.one_hot = label_mode == "one_hot" or self.mixup_alpha > 0

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
            rng = self.source.rng(3 << 20, index)
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size=len(inputs)).astype(np.float32)
            inputs, labels = array_math.mix(NUMPY, inputs, labels, lam, rng.permutation(len(inputs)))
        return inputs, labels

    def on_epoch_end(self):
        self.source.epoch += 1


class ArrayDataset(_Batches):
    """Batches of `(inputs, labels)` from feature images, for `model.fit`/`predict`.

    What `tf_pipeline.make_dataset` yields, from images in memory: when
    `training`, the utterances are shuffled (a new seeded order every epoch)
    and augmented per utterance on the small image (`array_math.Augment`);
    batches are then padded and cut into segments and resized, or turned
    into frame sequences for `output="frames"`; mixup mixes training
    batches. Every random draw depends on `(seed, epoch, batch or
    utterance)` only, so the data are the same whatever `workers` is.

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
        augment: an `array_math.Augment` (used only when `training`), or None.
        speakers: the speaker of each image (needed with `speaker_stats`).
        speaker_stats: optional dict `speaker -> ChannelStats`: standardise
            each utterance with its speaker's statistics (per-speaker
            normalisation), as `make_dataset(speaker_stats=...)`.
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
                 image_size=DEFAULT_SIZE, output="segments", seed=0, augment=None, speakers=None, speaker_stats=None,
                 label_mode="int", mixup_alpha=0.0, drop_remainder=False, workers=1, use_multiprocessing=False,
                 max_queue_size=10):
        super().__init__(images, labels, num_classes, output, n_segments, batch_size, training, image_size, seed,
                         augment, speakers, speaker_stats, label_mode, mixup_alpha, workers, use_multiprocessing,
                         max_queue_size, outputs=("segments", "frames"))
        count = len(self.source.labels)
        self._num_batches = count // batch_size if drop_remainder else -(-count // batch_size)
        if self._num_batches == 0:
            raise ValueError(f"drop_remainder with {count} utterances and batch_size={batch_size} leaves no batch")

    def __getitem__(self, index):
        source = self.source
        rows = self._items(index, len(source.labels))
        images = [source.image(i) for i in rows]
        if self.output == "segments":
            inputs = batch_segments(images, self.n_segments, self.image_size)
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

    Arguments as `ArrayDataset` (always `output="segments"`).

    Example:

    >>> data = SegmentDataset(arrays.images, arrays.corpus.labels, 7, n_segments=3)   # doctest: +SKIP
    >>> data[0][0].shape                                                              # doctest: +SKIP
    (30, 227, 227, 3)
    """

    def __init__(self, images, labels, num_classes, n_segments=3, batch_size=30, training=False,
                 image_size=DEFAULT_SIZE, seed=0, augment=None, speakers=None, speaker_stats=None, label_mode="int",
                 mixup_alpha=0.0, workers=1, use_multiprocessing=False, max_queue_size=10):
        super().__init__(images, labels, num_classes, "segments", n_segments, batch_size, training, image_size, seed,
                         augment, speakers, speaker_stats, label_mode, mixup_alpha, workers, use_multiprocessing,
                         max_queue_size, outputs=("segments",))
        self._count = len(self.source.labels) * self.n_segments
        self._num_batches = -(-self._count // batch_size)

    def __getitem__(self, index):
        source = self.source
        items = self._items(index, self._count)
        rows, segment = items // self.n_segments, items % self.n_segments
        utterances = np.unique(rows)
        resized = batch_segments([source.image(i) for i in utterances], self.n_segments, self.image_size)
        inputs = resized[np.searchsorted(utterances, rows), segment]
        return self._mix(inputs, source.targets(rows, self.one_hot), index)


# ---------------------------------------------------------------------------
# LOSO folds from the file.
# ---------------------------------------------------------------------------


def make_fold_data(arrays, fold, config, feature_config=None, workers=1):
    """The `FoldData` of one LOSO fold from `FeatureArrays`, without TensorFlow.

    `keras_ser.training.loso.build_fold_data` with numpy statistics and
    datasets: channel statistics from `fold.train_indices` only (the
    model's `standardize` layer gets them) or, with `config.speaker_norm`,
    every speaker standardised with its own statistics and the model's
    layer the identity, as `keras_ser.training.loso.make_fold_data`.

    Args:
        arrays: `FeatureArrays`.
        fold: a `tf_pipeline.folds.Fold` of `arrays.corpus`.
        config: a `TrainConfig` of a log-Mel model (not a speech encoder).
        feature_config: must equal the arrays' (checked) or be None.
        workers: threads preparing batches (`keras.utils.PyDataset`).

    Example:

    >>> fold = tf_pipeline.loso_folds(arrays.corpus)[0]                              # doctest: +SKIP
    >>> make_fold_data(arrays, fold, TrainConfig()).dataset("test", False)[0][0].shape   # doctest: +SKIP
    (30, 3, 227, 227, 3)
    """
    if feature_config is not None and FeatureConfig.from_dict(feature_config) != arrays.feature_config:
        raise ValueError(
            f"feature_config {FeatureConfig.from_dict(feature_config)} differs from the one the arrays were "
            f"computed with ({arrays.feature_config}); recompute the feature file"
        )
    preprocessor = config.preprocessor(arrays.feature_config)
    if preprocessor.layout not in ("segments", "frames"):
        raise ValueError(f"A feature file holds log-Mel images; model {config.model!r} reads "
                         f"{preprocessor.layout!r}. Received: model={config.model!r}")
    corpus = arrays.corpus
    speakers = corpus.speaker_ids
    common = dict(n_segments=preprocessor.n_segments or 1, batch_size=config.batch_size,
                  image_size=preprocessor.image_size or DEFAULT_SIZE, seed=config.seed,
                  augment=Augment.from_config(config), label_mode=config.label_mode,
                  mixup_alpha=config.mixup_alpha, workers=workers)

    def stats_of(indices):
        return channel_stats(arrays.images[i] for i in indices)

    def dataset(indices, training, speaker_stats):
        return ArrayDataset([arrays.images[i] for i in indices], corpus.labels[indices], corpus.num_classes,
                            training=training, output=preprocessor.layout, speakers=speakers[indices],
                            speaker_stats=speaker_stats, **common)

    def segment_dataset(indices, training, speaker_stats):
        return SegmentDataset([arrays.images[i] for i in indices], corpus.labels[indices], corpus.num_classes,
                              training=training, speakers=speakers[indices], speaker_stats=speaker_stats, **common)

    return build_fold_data(corpus, fold, config, stats_of, dataset, segment_dataset)


def fold_data_fn(arrays, workers=1):
    """The `fold_data` callable of `run_loso` / `run_fold` for `arrays`:
    `(corpus, fold, config, feature_config) -> FoldData`.

    Example:

    >>> run_loso(arrays.corpus, TrainConfig(), "runs/gpu", feature_config=arrays.feature_config,
    ...          fold_data=fold_data_fn(arrays), tensorboard=False)           # doctest: +SKIP
    """

    def fold_data(corpus, fold, config, feature_config=None):
        if corpus is not arrays.corpus and (corpus.name, len(corpus)) != (arrays.corpus.name, len(arrays)):
            raise ValueError(f"fold_data for {arrays.corpus.name} ({len(arrays)} utterances) received corpus "
                             f"{corpus.name} ({len(corpus)} utterances)")
        return make_fold_data(arrays, fold, config, feature_config, workers=workers)

    return fold_data
