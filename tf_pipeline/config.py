"""Feature configuration: the settings that turn a waveform into model input."""

import dataclasses
import json

# Most segments an utterance is cut into (the paper's N = 1..5): the one definition, used by
# tf_pipeline.segments, the model zoo, the training configuration and the command line.
MAX_SEGMENTS = 5


class _DictConfig:
    """A frozen dataclass config that round-trips through a plain dict and JSON."""

    def to_dict(self):
        """Returns the config as a plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)

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

    def to_json(self):
        """Returns the config as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Builds a config from `to_json()` output."""
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class FeatureConfig(_DictConfig):
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

    def __post_init__(self):
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



@dataclasses.dataclass(frozen=True)
class MelFramesConfig(_DictConfig):
    """Settings of the Mel power frames a pretrained speech encoder reads.

    The defaults are those the GE2E speaker encoder was trained with: 16 kHz,
    40 Mel bands, a 400-sample (25 ms) Hann window every 160 samples
    (10 ms), centred frames, Slaney Mel filterbank from 0 Hz to 8 kHz.
    Frames = `1 + samples // hop_length`.

    Args:
        sample_rate: int. Rate, in Hz, every waveform is resampled to.
            Defaults to `16000`.
        n_mels: int. Mel bands. Defaults to `40`.
        n_fft: int. Window length and FFT size in samples. Defaults to `400`.
        hop_length: int. Frame step in samples. Defaults to `160`.
        fmin: float. Lowest Mel filter edge in Hz. Defaults to `0.0`.
        fmax: float. Highest Mel filter edge in Hz. Defaults to `8000.0`.
        volume_dbfs: float or None. Raise each utterance to this RMS level
            in dB relative to full scale before the spectrum (never lower
            it), as the encoder's original package does with -30. None
            leaves the waveform as it is. Defaults to `None`.
        min_samples: int. Shortest accepted waveform (one full window).
            Defaults to `400`.

    Example:

    >>> config = MelFramesConfig(volume_dbfs=-30.0)
    >>> MelFramesConfig.from_dict(config.to_dict()) == config
    True
    >>> config.num_frames(16000)
    101
    """

    sample_rate: int = 16000
    n_mels: int = 40
    n_fft: int = 400
    hop_length: int = 160
    fmin: float = 0.0
    fmax: float = 8000.0
    volume_dbfs: float = None
    min_samples: int = 400

    def __post_init__(self):
        for name in ("sample_rate", "n_mels", "n_fft", "hop_length", "min_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                "Expected 0 <= fmin < fmax <= sample_rate / 2. Received: "
                f"fmin={self.fmin}, fmax={self.fmax}, sample_rate={self.sample_rate}"
            )
        if self.volume_dbfs is not None and not (
            isinstance(self.volume_dbfs, (int, float)) and self.volume_dbfs < 0
        ):
            raise ValueError(
                "`volume_dbfs` must be None or a negative level in dB full scale (e.g. -30.0). "
                f"Received: volume_dbfs={self.volume_dbfs!r}"
            )

    def num_frames(self, num_samples):
        """Frames produced from `num_samples` samples."""
        return 1 + num_samples // self.hop_length

