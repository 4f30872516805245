"""Feature configuration: the settings that turn a waveform into model input.

Also the one place of the limits and argument checks of the steps after the
features (segments, image size, batching), shared by the TensorFlow input
pipeline and the numpy one of the GPU path
(`keras_ser.training.feature_file`). Nothing here imports TensorFlow.
"""

import dataclasses
import json
import numbers

# Most segments an utterance is cut into (the paper's N = 1..5): the one definition, used by
# tf_pipeline.segments, the model zoo, the training configuration and the command line.
MAX_SEGMENTS = 5

# `(height, width)` each segment is resized to: the CNN input of the paper (AlexNet).
DEFAULT_SIZE = (227, 227)

# What a dataset of model input can yield (`tf_pipeline.make_dataset(output=...)`).
OUTPUTS = ("segments", "frames", "images")
LABEL_MODES = ("int", "one_hot")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(name, value, minimum=1):
    """Validates an integer argument (a bool is not one) of at least `minimum` and returns it.

    Example:

    >>> check_integer("time_masks", -1, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: time_masks must be a non-negative integer. Received: time_masks=-1
    """
    if not _is_int(value) or value < minimum:
        kind = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")
        raise ValueError(f"{name} must be a {kind} integer. Received: {name}={value!r}")
    return int(value)


def check_n_segments(n_segments, name="n_segments"):
    """Validates N, the segments an utterance is cut into (an int in 1..5), and returns it.

    The one check of N: the pipeline, the zoo, the training config and the
    command line (`name="--n_segments"`) all call it.

    Example:

    >>> check_n_segments(3)
    3
    >>> check_n_segments(6)
    Traceback (most recent call last):
    ...
    ValueError: n_segments must be between 1 and 5. Received: n_segments=6
    """
    if not _is_int(n_segments) or not 1 <= n_segments <= MAX_SEGMENTS:
        raise ValueError(f"{name} must be between 1 and {MAX_SEGMENTS}. Received: {name}={n_segments!r}")
    return int(n_segments)


def check_size(size):
    """Validates a segment size, an int or `(height, width)` of positive ints; returns `(height, width)`.

    Example:

    >>> check_size(67)
    (67, 67)
    >>> check_size((32, 0))
    Traceback (most recent call last):
    ...
    ValueError: size must be (height, width) with positive integers. Received: size=(32, 0)
    """
    if _is_int(size):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
        raise ValueError(f"size must be (height, width) with positive integers. Received: size={size!r}")
    return int(size[0]), int(size[1])


def too_few_frames_message(n_segments):
    """The error of an utterance shorter than `n_segments` frames (the number follows it)."""
    return (
        f"an utterance needs at least n_segments={n_segments} frames to be cut into {n_segments} "
        "segments (each frame is 10 ms with the default config); received fewer. Frames:"
    )


def check_frames(shortest, n_segments):
    """Raises ValueError when the shortest utterance (`shortest` frames) has fewer than N frames.

    (In a TensorFlow graph the same rule is an assertion with the same
    message, `tf_pipeline.segments`.)
    """
    if int(shortest) < n_segments:
        raise ValueError(f"{too_few_frames_message(n_segments)} {int(shortest)}")


def check_batching(output, n_segments, batch_size, label_mode="int", mixup_alpha=0.0, outputs=OUTPUTS):
    """Validates the arguments every dataset of model input takes.

    Args:
        output: the layout asked for, one of `outputs`.
        n_segments: N; checked when `output` is `"segments"`.
        batch_size: positive int.
        label_mode: `"int"` or `"one_hot"`.
        mixup_alpha: float >= 0.
        outputs: the layouts the dataset can make. Defaults to `OUTPUTS`.

    Returns:
        N as an int for `"segments"`, else None.

    Example:

    >>> check_batching("segments", 3, 30)
    3
    >>> check_batching("frames", 3, 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer. Received: batch_size=0
    """
    if output not in outputs:
        raise ValueError(f"output must be one of {outputs}. Received: output={output!r}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}. Received: label_mode={label_mode!r}")
    if not mixup_alpha >= 0:
        raise ValueError(f"mixup_alpha must be >= 0. Received: mixup_alpha={mixup_alpha}")
    check_batch_size(batch_size)
    return check_n_segments(n_segments) if output == "segments" else None


def check_batch_size(batch_size):
    """Validates a batch size (a positive int) and returns it."""
    return check_integer("batch_size", batch_size)


def _plain(value):
    """A field value as plain data (tuples and lists copied as lists, dicts as dicts)."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class DictConfig:
    """Base of the feature configs: a frozen dataclass that round-trips through a plain dict and JSON.

    Every feature config (this module's, and those of the model families,
    e.g. `keras_ser.models.speech_encoders.config`) subclasses it. A field
    declared with `metadata={"omit_when_none": True}` is left out of
    `to_dict()` while it is None, so that adding such an option changes no
    dict (nor the saved models and run records holding one) that does not
    use it.

    Example:

    >>> FeatureConfig.coerce({"n_mels": 40}).n_mels, FeatureConfig.coerce(None) == FeatureConfig()
    (40, True)
    """

    def to_dict(self):
        """Returns the config as a plain, JSON-serialisable dict."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.metadata.get("omit_when_none"):
                continue
            values[field.name] = value.to_dict() if isinstance(value, DictConfig) else _plain(value)
        return values

    @classmethod
    def from_dict(cls, config):
        """Builds a config from `to_dict()` output; unknown keys are an error."""
        if isinstance(config, cls):
            return config
        name = cls.__name__
        if not isinstance(config, dict):
            raise ValueError(f"Expected a dict of {name} fields. Received: {type(config).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown {name} fields: {unknown}. Expected some of: {sorted(known)}")
        return cls(**config)

    @classmethod
    def coerce(cls, config, name="feature_config"):
        """`config` as this class: an instance as it is, a dict through `from_dict`, None as the defaults.

        The one resolution of a feature config argument (the feature
        functions and datasets of this package, the model zoo, the
        preprocessors and the training runner call it); anything else is a
        ValueError that names the class expected.
        """
        if config is None:
            return cls()
        if isinstance(config, (cls, dict)):
            return cls.from_dict(config)
        raise ValueError(f"{name} must be a {cls.__module__}.{cls.__name__}, its dict, or None. "
                         f"Received: {name}={config!r}")

    def to_json(self):
        """Returns the config as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Builds a config from `to_json()` output."""
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class FrontEndConfig(DictConfig):
    """Settings of the speech front end: silence trimming and level normalisation.

    Applied to every waveform before its features (`tf_pipeline.front_end`),
    so that a model hears the speech and not the room: the leading and
    trailing stretches quieter than `trim_db` below the loudest frame are cut
    off (pauses inside the utterance are kept), then the rest is scaled to
    an RMS level of `level_dbfs`. A feature config holds it as its
    `front_end` field, so it is stored in every model built with that
    config and runs in training, prediction, timelines and the exported
    signatures alike.

    Args:
        trim_db: float or None. A frame is speech when its mean power is at
            most this many dB below the loudest frame of the utterance
            (librosa's `effects.trim(top_db=...)`). None keeps the
            waveform whole. Defaults to `30.0`.
        level_dbfs: float or None. RMS level, in dB relative to full scale,
            each (trimmed) utterance is scaled to, up or down. None leaves
            the level as it is. Defaults to `-18.0`.
        frame_ms: float. Length of the frames whose power is compared, in
            milliseconds; frames are centred on every hop (zeros before the
            first sample and after the last). Defaults to `50.0`.
        hop_ms: float. Step between those frames in milliseconds; the cut
            points fall on multiples of it. Defaults to `10.0`.

    Example:

    >>> config = FrontEndConfig(trim_db=40.0)
    >>> FrontEndConfig.from_dict(config.to_dict()) == config
    True
    >>> config.frame_length(16000), config.hop_length(16000)
    (800, 160)
    """

    trim_db: float = 30.0
    level_dbfs: float = -18.0
    frame_ms: float = 50.0
    hop_ms: float = 10.0

    def __post_init__(self):
        if self.trim_db is not None and not (isinstance(self.trim_db, numbers.Real) and self.trim_db > 0):
            raise ValueError(f"`trim_db` must be None or a positive number of dB. Received: trim_db={self.trim_db!r}")
        if self.level_dbfs is not None and not (
            isinstance(self.level_dbfs, numbers.Real) and not isinstance(self.level_dbfs, bool) and self.level_dbfs < 0
        ):
            raise ValueError(
                "`level_dbfs` must be None or a negative level in dB full scale (e.g. -18.0). "
                f"Received: level_dbfs={self.level_dbfs!r}"
            )
        for name in ("frame_ms", "hop_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number of milliseconds. Received: {name}={value!r}")
        if self.hop_ms > self.frame_ms:
            raise ValueError(
                f"`hop_ms` must not exceed `frame_ms`. Received: hop_ms={self.hop_ms}, frame_ms={self.frame_ms}"
            )

    @property
    def active(self):
        """Whether the front end changes anything (trimming or level on)."""
        return self.trim_db is not None or self.level_dbfs is not None

    def frame_length(self, sample_rate):
        """Samples per power frame at `sample_rate`."""
        return max(1, int(round(self.frame_ms * sample_rate / 1000.0)))

    def hop_length(self, sample_rate):
        """Samples between power frames at `sample_rate`."""
        return max(1, int(round(self.hop_ms * sample_rate / 1000.0)))


def front_end_field():
    """The `front_end` field of a feature config: a `FrontEndConfig`, or None (off, left out of `to_dict`)."""
    return dataclasses.field(default=None, metadata={"omit_when_none": True})


def check_front_end(front_end):
    """`front_end` as a `FrontEndConfig` (from a dict too), or None; anything else is a ValueError."""
    if front_end is None or isinstance(front_end, FrontEndConfig):
        return front_end
    if isinstance(front_end, dict):
        return FrontEndConfig.from_dict(front_end)
    raise ValueError(f"`front_end` must be a FrontEndConfig, its dict or None. Received: {front_end!r}")


@dataclasses.dataclass(frozen=True)
class FeatureConfig(DictConfig):
    """Settings of the log-Mel / delta / delta-delta feature image.

    The defaults are those of Jiang, Fu & Tao (2019): 16 kHz audio, 60 Mel
    bands, a 25 ms Hamming window every 10 ms. Framing follows librosa with
    `center=False`: frames of `n_fft` samples every `hop_length` samples, no
    padding of the signal, each frame multiplied by a periodic Hamming window
    of `win_length` samples centred in it (zeros elsewhere). The Mel
    filterbank is librosa's default (Slaney scale, Slaney area
    normalisation). The log is `log(mel_power + log_floor)`.

    A config round-trips through a plain dict (`to_dict` / `from_dict`) and
    JSON, so that it can be stored inside saved and exported models.

    Args:
        sample_rate: int. Rate, in Hz, every waveform is resampled to.
            Defaults to `16000`.
        n_mels: int. Number of Mel bands. Defaults to `60`.
        win_length: int. Hamming window length in samples. Defaults to
            `400` (25 ms at 16 kHz).
        hop_length: int. Frame step in samples. Defaults to `160` (10 ms).
        n_fft: int. FFT size and frame length in samples. Defaults to `512`.
        fmin: float. Lowest Mel filter edge in Hz. Defaults to `0.0`.
        fmax: float. Highest Mel filter edge in Hz, at most
            `sample_rate / 2`. Defaults to `8000.0`.
        log_floor: float. Added to the Mel power before the natural log.
            Defaults to `1e-6`.
        delta_width: int. `N` of the HTK regression formula for deltas; the
            regression spans `2 * N + 1` frames. Defaults to `2`.
        front_end: `FrontEndConfig`, its dict, or None. Silence trimming and
            level normalisation before the features (`tf_pipeline.front_end`).
            Defaults to `None` (the waveform as it is).

    Example:

    >>> config = FeatureConfig(n_mels=40)
    >>> FeatureConfig.from_dict(config.to_dict()) == config
    True
    """

    sample_rate: int = 16000
    n_mels: int = 60
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-6
    delta_width: int = 2
    front_end: FrontEndConfig = front_end_field()

    def __post_init__(self):
        object.__setattr__(self, "front_end", check_front_end(self.front_end))
        for name in ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft", "delta_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive integer. Received: {name}={value!r}"
                )
        if self.win_length > self.n_fft:
            raise ValueError(
                "`win_length` must not exceed `n_fft`. Received: "
                f"win_length={self.win_length}, n_fft={self.n_fft}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                "Expected 0 <= fmin < fmax <= sample_rate / 2. Received: "
                f"fmin={self.fmin}, fmax={self.fmax}, sample_rate={self.sample_rate}"
            )
        if not self.log_floor > 0:
            raise ValueError(f"`log_floor` must be positive. Received: log_floor={self.log_floor}")

    @property
    def frame_length(self):
        """Samples in one analysis frame (the FFT size)."""
        return self.n_fft

    def min_samples(self, n_frames=1):
        """Fewest samples that give `n_frames` frames."""
        return self.n_fft + (n_frames - 1) * self.hop_length

    def num_frames(self, num_samples):
        """Frames produced from `num_samples` samples (0 when too short)."""
        if num_samples < self.n_fft:
            return 0
        return 1 + (num_samples - self.n_fft) // self.hop_length
