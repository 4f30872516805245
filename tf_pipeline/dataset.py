"""tf.data input pipelines from a `Corpus` to model input.

Files are read and turned into small feature images (`[n_mels, frames, 3]`)
by a parallel map; those are cached (in memory, or in a file given by
`cache`), shuffled when training, padded into batches, and only then cut
into segments and resized to the CNN input with the batched resize, which
keeps the expensive 227x227 tensors out of the cache.
"""

import functools
import wave

import numpy as np
import tensorflow as tf

from tf_pipeline import array_math
from tf_pipeline import audio as audio_lib
from tf_pipeline import augment as augment_lib
from tf_pipeline import features
from tf_pipeline import normalization
from tf_pipeline import segments as segments_lib
from tf_pipeline.config import DEFAULT_SIZE
from tf_pipeline.config import OUTPUTS  # noqa: F401  (re-exported)
from tf_pipeline.config import FeatureConfig
from tf_pipeline.config import check_batching


def _is_pcm16_wav(path):
    try:
        with wave.open(path, "rb") as handle:
            return handle.getsampwidth() == 2
    except (wave.Error, EOFError, OSError):
        return False


def waveform_fn(paths, config):
    """A function `path tensor -> waveform` at `config.sample_rate` for `paths`: in-graph when every one is a
    16-bit PCM WAV, through soundfile otherwise (what every dataset of this package and of the model families reads
    audio with)."""
    return _reader(config, all(_is_pcm16_wav(path) for path in paths))


def _reader(config, in_graph):
    if in_graph:
        return lambda path: audio_lib.decode_to_waveform(tf.io.read_file(path), config)

    def read(path):
        return audio_lib.load_audio(path.decode("utf-8"), config)

    def fn(path):
        waveform = tf.numpy_function(read, [path], tf.float32, stateful=False)
        return tf.ensure_shape(waveform, [None])

    return fn


def feature_image_function(paths, config):
    """`path -> feature image [n_mels, frames, 3]` for files like `paths`, as one `tf.function` kept per process.

    One function per feature config and reader (in-graph WAV decoding, or
    soundfile when a path is not 16-bit PCM WAV, as `waveform_fn`): every
    dataset of `feature_images` calls it inside its map, so the decoding,
    resampling and feature graph is traced once per setting, not once per
    dataset (a LOSO run builds three datasets a fold).

    Example:

    >>> corpus = tf_pipeline.corpora.synthetic("/tmp/synthetic")
    >>> paths = [record.path for record in corpus.records]
    >>> to_image = feature_image_function(paths, FeatureConfig())
    >>> to_image(paths[0]).shape[0], to_image is feature_image_function(paths[:2], FeatureConfig().to_dict())
    (60, True)
    """
    config = FeatureConfig.coerce(config, "config")
    return _image_function(config, all(_is_pcm16_wav(path) for path in paths))


@functools.lru_cache(maxsize=32)
def _image_function(config, in_graph):
    to_waveform = _reader(config, in_graph)
    return tf.function(lambda path: features.feature_image(to_waveform(path), config),
                       input_signature=[tf.TensorSpec([], tf.string)], autograph=False)


def map_without_autograph(dataset, fn, **kwargs):
    """`dataset.map(fn, **kwargs)`, with `fn` traced as written rather than converted by AutoGraph.

    Every function this package maps (file reading, features, segments,
    augmentation, the model families' inputs) is written for graphs
    already: the SavedModel signatures trace the same code with AutoGraph
    off. Converting it first only costs time: building a training dataset
    took 2.6 times as long the first time in a process (AutoGraph's set-up)
    and 1.5 times as long after that on 2 cores (`python
    benchmarks/dataset_build.py`), with the same elements. A mapped
    function that needs Python control flow on tensors fails at trace time
    here, with TensorFlow's message naming the line.

    Example:

    >>> dataset = tf.data.Dataset.range(3)
    >>> [int(x) for x in map_without_autograph(dataset, lambda x: 2 * x)]
    [0, 2, 4]
    """
    return dataset.map(tf.autograph.experimental.do_not_convert(fn), **kwargs)


def check_indices(corpus, indices):
    """Record indices of `corpus` as int64 numpy (None: all); a ValueError for an empty or out-of-range list."""
    indices = np.asarray(indices if indices is not None else np.arange(len(corpus)), dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError(f"indices must be a non-empty 1-D list of record indices. Received shape: {indices.shape}")
    if indices.min() < 0 or indices.max() >= len(corpus):
        raise ValueError(
            f"indices must lie in [0, {len(corpus)}) for a corpus of {len(corpus)} records. "
            f"Received min {indices.min()}, max {indices.max()}"
        )
    return indices


def feature_images(corpus, indices=None, config=None):
    """A dataset of `(image [n_mels, frames, 3], num_frames, label)` per utterance.

    Unbatched, in corpus order, computed with a parallel map.
    """
    config = FeatureConfig.coerce(config, "config")
    indices = check_indices(corpus, indices)
    paths = [corpus.records[i].path for i in indices]
    labels = corpus.labels[indices]
    to_image = feature_image_function(paths, config)

    def load(path, label):
        image = to_image(path)
        return image, tf.shape(image)[1], label

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return map_without_autograph(dataset, load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def corpus_channel_stats(corpus, indices=None, config=None):
    """Per-channel `ChannelStats` over the utterances at `indices`.

    Pass the training indices of a fold only: the statistics then never see
    the test speaker.
    """
    images = feature_images(corpus, indices, config)
    return normalization.channel_stats(
        (image.numpy(), int(frames)) for image, frames, _ in images.prefetch(tf.data.AUTOTUNE)
    )


def speaker_channel_stats(corpus, speakers=None, config=None):
    """Per-speaker `ChannelStats` (for per-speaker normalisation).

    Each speaker's statistics come from all of that speaker's audio, labels
    unused. For a test speaker that is its unlabelled test audio: an
    option that results must name.

    Returns:
        dict `speaker -> ChannelStats`.
    """
    speakers = corpus.speakers if speakers is None else speakers
    ids = corpus.speaker_ids
    return {speaker: corpus_channel_stats(corpus, np.flatnonzero(ids == speaker), config) for speaker in speakers}


def make_dataset(
    corpus,
    indices=None,
    n_segments=3,
    batch_size=30,
    training=False,
    config=None,
    image_size=DEFAULT_SIZE,
    output="segments",
    cache=True,
    seed=0,
    augment=None,
    drop_remainder=False,
    speaker_stats=None,
    label_mode="int",
    mixup_alpha=0.0,
):
    """A batched tf.data pipeline of model inputs and integer labels.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        indices: record indices to use (e.g. a fold's `train_indices`);
            defaults to every record.
        n_segments: int, N in 1..5 (ignored for `output="frames"`).
        batch_size: int. Defaults to `30` (the paper's).
        training: bool. Shuffle (reshuffled every epoch, seeded) and apply
            `augment`. Defaults to `False`.
        config: `FeatureConfig` or its dict.
        image_size: `(height, width)` of each segment. Defaults to `(227, 227)`.
        output: `"segments"` for `[B, N, height, width, 3]` (CNN and CNN+SRU
            models), `"frames"` for `[B, max_frames, 3 * n_mels]` zero-padded
            frame sequences (the `sru` baseline; each frame is log-Mel, delta,
            delta-delta concatenated), or `"images"` for
            `((images [B, n_mels, max_frames, 3], num_frames [B]))`.
        cache: `True` (memory), `False`, or a file path for tf.data's file
            cache of the small feature images.
        seed: int, the shuffle seed. Defaults to `0`.
        augment: optional callable `(image, num_frames) -> (image, num_frames)`
            applied per utterance on the small image when `training` (see
            `tf_pipeline.augment.make_augment`).
        drop_remainder: bool. Defaults to `False`.
        speaker_stats: optional dict `speaker -> ChannelStats`: standardise
            each utterance with its own speaker's statistics (per-speaker
            normalisation). For a test speaker this uses its unlabelled
            audio; it is an option, off by default, and results using it
            must say so.
        label_mode: `"int"` (class ids) or `"one_hot"` (float vectors, for
            label smoothing and mixup). Defaults to `"int"`.
        mixup_alpha: float. When > 0 and `training`, mixup of each batch
            with `Beta(alpha, alpha)` weights (labels become one-hot mixes).

    Returns:
        A `tf.data.Dataset` of `(inputs, labels)`.

    Example:

    >>> corpus = tf_pipeline.corpora.synthetic("/tmp/synthetic")
    >>> folds = tf_pipeline.loso_folds(corpus)
    >>> train = make_dataset(corpus, folds[0].train_indices, n_segments=3, training=True)
    >>> segments, labels = next(iter(train))
    >>> segments.shape
    TensorShape([30, 3, 227, 227, 3])
    """
    n_segments = check_batching(output, n_segments, batch_size, label_mode, mixup_alpha)
    config = FeatureConfig.coerce(config, "config")
    indices = check_indices(corpus, indices)

    dataset = feature_images(corpus, indices, config)
    if speaker_stats is not None:
        stats = normalization.utterance_stats([corpus.records[i].speaker for i in indices], speaker_stats)
        dataset = map_without_autograph(
            tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(stats))),
            lambda item, stats: (array_math.standardise(item[0], *stats), item[1], item[2]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if cache is True:
        dataset = dataset.cache()
    elif cache:
        dataset = dataset.cache(str(cache))
    if training:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            dataset = map_without_autograph(
                dataset, lambda image, frames, label: (*augment(image, frames), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes=([config.n_mels, None, 3], [], []),
        drop_remainder=drop_remainder,
    )

    def to_inputs(images, frames, labels):
        if output == "segments":
            return segments_lib.batch_segment_and_resize(images, frames, n_segments, image_size), labels
        if output == "frames":
            return features.batch_frame_sequence(images), labels
        return (images, frames), labels

    dataset = map_without_autograph(dataset, to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    num_classes = corpus.num_classes
    if training and mixup_alpha > 0:
        dataset = map_without_autograph(dataset, lambda x, y: augment_lib.mixup(x, y, num_classes, mixup_alpha),
                                        num_parallel_calls=tf.data.AUTOTUNE)
    elif label_mode == "one_hot":
        dataset = map_without_autograph(dataset, lambda x, y: (x, tf.one_hot(y, num_classes)))
    return dataset.prefetch(tf.data.AUTOTUNE)
