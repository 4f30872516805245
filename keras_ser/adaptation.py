"""Speaker adaptation at inference: standardise pooled features with one speaker's own statistics.

Speaker differences dominate the errors across speakers. A model whose head
was trained on features standardised *per speaker* (each training speaker
with its own mean and variance, `TrainConfig(speaker_norm=True)`) can be
adapted to a new speaker from that speaker's unlabelled utterances:
`adapt(model, waveforms)` returns a copy whose `"standardize"` layer holds
the mean and variance of those utterances' pooled features. Results that
use it use the test speaker's (unlabelled) audio and must say so.

Only the speech-encoder family's entries (`EncoderTask`,
`keras_ser.models.speech_encoders`: `encoder_stats`, `encoder_sru`,
`sfx_stats`, `fusion_stats`) can be adapted: their `"standardize"` layer sits
on the pooled features.

How a speaker-normalised model is stored (the flag `adapt` checks): its
`"standardize"` layer holds mean 0 everywhere and, as variance, the prior
within-speaker variance `v0` (the average of the training speakers' own
variances). A model standardised with global statistics has non-zero means
and is refused (`ValueError`), as is an untrained one (mean 0, variance 1).
Its default signatures (`serving_default`, `serve_wav`) apply this stored
"no speaker" standardisation, which is not centred: predict with an adapted
copy, or the SavedModel's `serve_speaker` signature.

Few utterances: the speaker's variance is shrunk toward the prior,
`var = (n * var_speaker + k * v0) / (n - 1 + k)` with `n` utterances,
`var_speaker` their variance (ddof 0) and prior weight `k`
(`DEFAULT_PRIOR_WEIGHT`, in utterances): the sum of squares plus `k` prior
utterances over the degrees of freedom. With one utterance the variance is
the prior alone and only the mean is the speaker's (centring); with `k = 0`
it is the speaker's unbiased variance. The mean is always the speaker's own.
"""

import numpy as np

from tf_pipeline.padding import pad_waveforms

# Prior weight k of the variance shrinkage (in utterances); chosen on training
# speakers only: the median of the per-fold choices on EMO-DB LOSO (experiments/speaker_adaptation.py,
# docs/speech_encoder.md). Below ~10 utterances adaptation was worse than the unadapted model there.
DEFAULT_PRIOR_WEIGHT = 10.0


def _standardize(model):
    try:
        return model.get_layer("standardize")
    except ValueError:
        raise ValueError("adapt needs a keras-ser model with a 'standardize' layer") from None


def _check_encoder_model(model):
    from keras_ser.models.speech_encoders.encoder_task import EncoderTask

    if not isinstance(model, EncoderTask):
        raise ValueError("Speaker adaptation works on the speech-encoder entries (keras_ser.models.speech_encoders."
                         "EncoderTask), whose 'standardize' layer sits on pooled features. "
                         f"Received: {type(model).__name__}")


def is_speaker_normalized(model):
    """True when `model` was trained with per-speaker normalisation (stored mean 0, variance the prior)."""
    layer = _standardize(model)
    mean = np.asarray(layer.mean)
    variance = np.asarray(layer.variance)
    return bool(np.all(mean == 0.0) and not np.all(variance == 1.0) and np.all(variance > 0))


def check_speaker_normalized(model):
    """Raises ValueError unless `model` can be adapted (see the module docstring)."""
    _check_encoder_model(model)
    if not is_speaker_normalized(model):
        raise ValueError(
            "This model was not trained with per-speaker normalisation (its 'standardize' layer holds global "
            "statistics, or none), so standardising with one speaker's statistics would not match what its "
            "head learned. Train it with speaker_norm=True (keras_ser.adaptation.set_speaker_normalized_probe) "
            "and adapt that model, not an already adapted copy."
        )


def prior_variance(model):
    """The prior within-speaker variance `v0` a speaker-normalised model stores."""
    check_speaker_normalized(model)
    return np.asarray(_standardize(model).variance, np.float64)


def feature_moments(features):
    """`(mean, variance)` (ddof 0, float64) of pooled features over every axis but the last.

    The statistics of one speaker's utterances `[n, d]` (or `[n, segments,
    d]`), as per-speaker normalisation uses them in training
    (`keras_ser.training.loso`) and, shrunk, in adaptation.

    Example:

    >>> mean, variance = feature_moments([[1.0, 0.0], [3.0, 0.0]])
    >>> mean.tolist(), variance.tolist()
    ([2.0, 0.0], [1.0, 0.0])
    """
    features = np.asarray(features, np.float64)
    axes = tuple(range(features.ndim - 1))
    return features.mean(axis=axes), features.var(axis=axes)


def shrunk_variance(variance, n, prior_var, prior_weight):
    """`(n * variance + k * prior_var) / (n - 1 + k)` with `k = prior_weight`.

    Arithmetic only, so the same formula runs on numpy arrays here and on
    tensors inside the exported `serve_speaker` signature.

    Example:

    >>> float(shrunk_variance(2.0, 4, 1.0, 10.0))
    1.3846153846153846
    """
    return (n * variance + prior_weight * prior_var) / (n - 1.0 + prior_weight)


def shrink_statistics(features, prior_var, prior_weight=DEFAULT_PRIOR_WEIGHT):
    """Mean and shrunk variance of one speaker's pooled features `[n, d]` (or `[n, segments, d]`).

    `var = (n * var_speaker + k * prior_var) / (n - 1 + k)`, `n` utterances
    (rows; times segments for `encoder_sru`), `k = prior_weight` (0: the
    speaker's own unbiased variance, which needs n >= 2).
    """
    features = np.asarray(features, np.float64)
    if features.shape[0] < 1:
        raise ValueError("At least one utterance of the speaker is needed")
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be >= 0. Received: {prior_weight!r}")
    n_values = int(np.prod(features.shape[:-1]))
    if prior_weight == 0 and n_values < 2:
        raise ValueError("With one utterance the variance is undefined: use prior_weight > 0")
    mean, variance = feature_moments(features)
    return mean, shrunk_variance(variance, n_values, np.asarray(prior_var, np.float64), prior_weight)


def pooled_features(model, waveforms, batch_size=16):
    """The model's pooled features (`features_model()`) of mono waveforms at its sample rate, `[n, ...]` numpy.

    The front end runs eagerly (its checks raise their ValueError); the features model runs as one compiled call
    (`keras_ser.inference.predictor`): called eagerly, the speaker encoder's LSTM steps through the frames one op
    at a time.
    """
    import tensorflow as tf

    from keras_ser.inference import predictor

    _check_encoder_model(model)
    waveforms = [np.asarray(w, np.float32).reshape(-1) for w in waveforms]
    if not waveforms:
        raise ValueError("No waveforms given")
    features = predictor(model.features_model())
    out = []
    for start in range(0, len(waveforms), batch_size):
        chunk = waveforms[start:start + batch_size]
        padded, lengths = pad_waveforms(chunk)
        inputs = model.preprocessor.batch(tf.constant(padded), tf.constant(lengths))
        out.append(np.asarray(features(inputs)))
    return np.concatenate(out)


def speaker_statistics(model, waveforms, prior_weight=DEFAULT_PRIOR_WEIGHT):
    """`(mean, variance)` of the model's pooled features over one speaker's utterances (shrunk, see module)."""
    prior = prior_variance(model)
    return shrink_statistics(pooled_features(model, waveforms), prior, prior_weight)


def adapt(model, waveforms, min_utterances=1, prior_weight=DEFAULT_PRIOR_WEIGHT):
    """A copy of a speaker-normalised model, standardising with the statistics of one speaker's utterances.

    Args:
        model: a speech-encoder model trained with per-speaker normalisation
            (see the module docstring); it is not changed.
        waveforms: list of mono float waveforms at `model.feature_config.sample_rate`,
            all from ONE speaker (unlabelled).
        min_utterances: int. Fewer waveforms is a ValueError. Defaults to `1`.
        prior_weight: float. Shrinkage of the variance toward the model's prior.

    Returns:
        A new model (same class, weights copied) whose `standardize` layer
        holds the speaker's mean and shrunk variance.

    Example:

    >>> adapted = keras_ser.adapt(model, [tf_pipeline.load_audio(p) for p in call_files])  # doctest: +SKIP
    >>> adapted.predict(model.preprocessor(waveform))                                         # doctest: +SKIP
    """
    check_speaker_normalized(model)
    waveforms = list(waveforms)
    if len(waveforms) < max(1, int(min_utterances)):
        raise ValueError(f"adapt needs at least {max(1, int(min_utterances))} utterance(s) of the speaker; "
                         f"received {len(waveforms)}")
    mean, variance = speaker_statistics(model, waveforms, prior_weight)
    adapted = model.__class__.from_config(model.get_config())
    adapted.set_weights(model.get_weights())
    layer = adapted.get_layer("standardize")
    layer.mean.assign(mean.astype(np.float32))
    layer.variance.assign(variance.astype(np.float32))
    adapted.speaker_utterances = len(waveforms)
    return adapted


def fold_probe(probe):
    """Kernel and bias of a `fit_probe` result with its own StandardScaler folded in.

    `((z - m) / s) W + b = z (W / s) + (b - (m / s) W)`: the model then needs no
    second standardisation after the per-speaker one.
    """
    scale = np.sqrt(np.asarray(probe["variance"], np.float64))
    scale = np.where(scale > 0, scale, 1.0)  # StandardScaler leaves zero-variance features unscaled
    kernel = np.asarray(probe["kernel"], np.float64) / scale[:, None]
    bias = np.asarray(probe["bias"], np.float64) - (np.asarray(probe["mean"], np.float64) / scale) @ np.asarray(
        probe["kernel"], np.float64)
    return kernel.astype(np.float32), bias.astype(np.float32)


def set_speaker_normalized_probe(model, probe, prior_var, mean=None, variance=None):
    """Writes a probe fitted on per-speaker-standardised features into `model`.

    The probe's scaler is folded into `predictions`; `standardize` gets mean 0
    and variance `prior_var` (the stored, adaptable state), or `mean` and
    `variance` when given (an already adapted model, e.g. a LOSO fold's test
    speaker).
    """
    kernel, bias = fold_probe(probe)
    predictions = model.get_layer("predictions")
    predictions.kernel.assign(kernel)
    predictions.bias.assign(bias)
    layer = _standardize(model)
    d = layer.mean.shape[0]
    layer.mean.assign(np.zeros(d, np.float32) if mean is None else np.asarray(mean, np.float32))
    layer.variance.assign(np.asarray(prior_var if variance is None else variance, np.float32))
    return model
