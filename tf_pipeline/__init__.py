"""tf_pipeline: from audio bytes to keras-ser model input, in TensorFlow ops.

What every model family shares: audio I/O and resampling, the speech front
end (silence trimming, level), the log-Mel image with its deltas and
segments, feature statistics, corpora and their folds, and tf.data
pipelines. The same functions build the tf.data input pipeline and the
exported serving signatures, so training and serving compute identical
features. A model family's own front end (e.g. a pretrained encoder's
frames) lives beside its models in `keras_ser.models`; nothing here knows
a model.

Public names are loaded lazily: `from tf_pipeline.config import FeatureConfig`
works without importing TensorFlow (the model code in `keras_ser` runs on the
JAX and PyTorch backends too, on machines without TensorFlow).

Example:

>>> import tf_pipeline
>>> config = tf_pipeline.FeatureConfig()
>>> waveform = tf_pipeline.load_audio("03a01Fa.wav")          # doctest: +SKIP
>>> image = tf_pipeline.feature_image(waveform, config)        # [60, frames, 3]
>>> segments = tf_pipeline.segment_and_resize(image, n_segments=3)  # [3, 227, 227, 3]
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "FeatureConfig": "tf_pipeline.config",
    "FrontEndConfig": "tf_pipeline.config",
    # the speech front end: silence trimming and level normalisation
    "apply_front_end": "tf_pipeline.front_end",
    "speech_bounds": "tf_pipeline.front_end",
    "normalize_level": "tf_pipeline.front_end",
    # audio
    "decode_wav": "tf_pipeline.audio",
    "to_mono": "tf_pipeline.audio",
    "resample": "tf_pipeline.audio",
    "load_audio": "tf_pipeline.audio",
    "AudioDecodeError": "tf_pipeline.audio",
    "decode_to_waveform": "tf_pipeline.audio",
    "batch_decode_wav": "tf_pipeline.audio",
    # features
    "mel_filterbank": "tf_pipeline.features",
    "log_mel": "tf_pipeline.features",
    "deltas": "tf_pipeline.features",
    "feature_image": "tf_pipeline.features",
    "batch_log_mel": "tf_pipeline.features",
    "batch_feature_image": "tf_pipeline.features",
    "batch_frame_sequence": "tf_pipeline.features",
    # segments
    "segment_and_resize": "tf_pipeline.segments",
    "batch_segment_and_resize": "tf_pipeline.segments",
    "MAX_SEGMENTS": "tf_pipeline.config",
    "check_n_segments": "tf_pipeline.config",
    # normalisation
    "ChannelStats": "tf_pipeline.normalization",
    "channel_stats": "tf_pipeline.normalization",
    # corpora and folds
    "Corpus": "tf_pipeline.corpora",
    "Record": "tf_pipeline.corpora",
    "CorpusError": "tf_pipeline.corpora",
    "corpora": "tf_pipeline.corpora",
    "loso_folds": "tf_pipeline.folds",
    "loco_folds": "tf_pipeline.folds",
    "Fold": "tf_pipeline.folds",
    # datasets
    "make_dataset": "tf_pipeline.dataset",
    "waveform_dataset": "tf_pipeline.waveform_batches",
    "feature_images": "tf_pipeline.dataset",
    "corpus_channel_stats": "tf_pipeline.dataset",
    "speaker_channel_stats": "tf_pipeline.dataset",
    "augment": "tf_pipeline.augment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tf_pipeline' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
