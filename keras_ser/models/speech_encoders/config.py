"""Feature configs of the speech-encoder family: the settings of each encoder's front end.

- `MelFramesConfig`: the Mel power frames the GE2E speaker encoder reads
  (`keras_ser.models.speech_encoders.mel_power`).
- `SoundEffectsMelConfig`: the log-Mel the aisfx sound-effects CNN reads
  (`keras_ser.models.speech_encoders.sound_effects_mel`).
- `FusionFeatureConfig`: both, for the fused model
  (`keras_ser.models.speech_encoders.fusion_inputs`).

Each is a `tf_pipeline.config.DictConfig` (a frozen dataclass that
round-trips through a dict and JSON, stored in every model built with it)
with an optional speech front end (`tf_pipeline.config.FrontEndConfig`).
Nothing here imports TensorFlow.
"""

import dataclasses

from tf_pipeline.config import DictConfig
from tf_pipeline.config import FrontEndConfig
from tf_pipeline.config import check_front_end
from tf_pipeline.config import front_end_field


@dataclasses.dataclass(frozen=True)
class MelFramesConfig(DictConfig):
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
        front_end: `FrontEndConfig`, its dict, or None. Silence trimming and
            level normalisation before the features (`tf_pipeline.front_end`).
            Defaults to `None` (the waveform as it is).

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
    front_end: FrontEndConfig = front_end_field()

    def __post_init__(self):
        object.__setattr__(self, "front_end", check_front_end(self.front_end))
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

    @classmethod
    def with_volume(cls, volume_dbfs, front_end=None):
        """The default settings with `volume_dbfs` (and `front_end`): the command line's `--volume_dbfs`."""
        return cls(volume_dbfs=volume_dbfs, front_end=front_end)


# The sound-effects encoder's own frames: 2048 samples every 1024 at 44.1 kHz.
SFX_REFERENCE_RATE = 44100
SFX_REFERENCE_N_FFT = 2048
SFX_REFERENCE_HOP = 1024


@dataclasses.dataclass(frozen=True)
class SoundEffectsMelConfig(DictConfig):
    """Settings of the sound-effects encoder's log-Mel input.

    Window and hop follow the sample rate so that they last as long as the
    network's (2048 and 1024 samples at 44.1 kHz).

    Args:
        sample_rate: int. Rate, in Hz, every waveform is resampled to.
            Defaults to `16000`.
        n_mels: int. Mel bands (HTK scale, filters of unit sum). Defaults to
            `96`.
        fmin: float. Lowest Mel filter edge in Hz. Defaults to `0.0`.
        fmax: float. Highest Mel filter edge in Hz; may exceed the Nyquist
            frequency (those bands stay empty). Defaults to `22050.0`.
        min_samples: int. Shortest accepted waveform. Defaults to `2048`
            (128 ms at 16 kHz: the encoder's three 2x time poolings need 8
            frames).
        front_end: `FrontEndConfig`, its dict, or None. Silence trimming and
            level normalisation before the features (`tf_pipeline.front_end`).
            Defaults to `None` (the waveform as it is).

    Example:

    >>> config = SoundEffectsMelConfig()
    >>> config.n_fft, config.hop_length, config.num_frames(16000)
    (743, 372, 44)
    >>> SoundEffectsMelConfig.from_dict(config.to_dict()) == config
    True
    """

    sample_rate: int = 16000
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 22050.0
    min_samples: int = 2048
    front_end: FrontEndConfig = front_end_field()

    def __post_init__(self):
        object.__setattr__(self, "front_end", check_front_end(self.front_end))
        for name in ("sample_rate", "n_mels", "min_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if not 0 <= self.fmin < self.fmax:
            raise ValueError(f"Expected 0 <= fmin < fmax. Received: fmin={self.fmin}, fmax={self.fmax}")
        if self.min_samples < self.n_fft:
            raise ValueError(
                f"`min_samples` must be at least one window ({self.n_fft} samples at {self.sample_rate} Hz). "
                f"Received: min_samples={self.min_samples}"
            )

    @property
    def n_fft(self):
        """Window length and FFT size in samples (46.4 ms)."""
        return int(round(SFX_REFERENCE_N_FFT * self.sample_rate / SFX_REFERENCE_RATE))

    @property
    def hop_length(self):
        """Frame step in samples (23.2 ms)."""
        return int(round(SFX_REFERENCE_HOP * self.sample_rate / SFX_REFERENCE_RATE))

    @property
    def power_scale(self):
        """Factor bringing this window's power to the level of the network's 2048-sample window."""
        return (SFX_REFERENCE_N_FFT / self.n_fft) ** 2

    def num_frames(self, num_samples):
        """Frames produced from `num_samples` samples."""
        return 1 + int(num_samples) // self.hop_length


@dataclasses.dataclass(frozen=True)
class FusionFeatureConfig(DictConfig):
    """Front-end settings of the fused model: one config per encoder.

    Both front ends must read audio at the same rate (the waveforms are
    shared).

    Args:
        mel_frames: `MelFramesConfig` or its dict (the speaker encoder's
            input). Defaults to `MelFramesConfig()`.
        sfx_mel: `SoundEffectsMelConfig` or its dict (the sound-effects
            encoder's input). Defaults to `SoundEffectsMelConfig()`.
        front_end: `FrontEndConfig`, its dict, or None: the front end both
            encoders' inputs are computed after (run once, on the shared
            waveforms; the two sub-configs hold none). Defaults to `None`.

    Example:

    >>> config = FusionFeatureConfig()
    >>> config.sample_rate, config.sfx_mel.n_mels
    (16000, 96)
    >>> FusionFeatureConfig.from_dict(config.to_dict()) == config
    True
    """

    mel_frames: MelFramesConfig = dataclasses.field(default_factory=MelFramesConfig)
    sfx_mel: SoundEffectsMelConfig = dataclasses.field(default_factory=SoundEffectsMelConfig)
    front_end: FrontEndConfig = front_end_field()

    def __post_init__(self):
        object.__setattr__(self, "mel_frames", MelFramesConfig.from_dict(self.mel_frames))
        object.__setattr__(self, "sfx_mel", SoundEffectsMelConfig.from_dict(self.sfx_mel))
        object.__setattr__(self, "front_end", check_front_end(self.front_end))
        inner = [name for name in ("mel_frames", "sfx_mel") if getattr(self, name).front_end is not None]
        if inner:
            raise ValueError(
                "The fused model runs one front end on the waveforms both encoders share: set "
                f"FusionFeatureConfig(front_end=...), not {', '.join(f'{name}.front_end' for name in inner)}. "
                f"Received: {', '.join(f'{name}.front_end={getattr(self, name).front_end!r}' for name in inner)}"
            )
        if self.mel_frames.sample_rate != self.sfx_mel.sample_rate:
            raise ValueError(
                "Both front ends must read the same sample rate. Received: "
                f"mel_frames.sample_rate={self.mel_frames.sample_rate}, "
                f"sfx_mel.sample_rate={self.sfx_mel.sample_rate}"
            )

    @property
    def sample_rate(self):
        """The audio rate both front ends read."""
        return self.mel_frames.sample_rate

    @property
    def min_samples(self):
        """Shortest waveform both front ends accept."""
        return max(self.mel_frames.min_samples, self.sfx_mel.min_samples)

    @classmethod
    def with_volume(cls, volume_dbfs, front_end=None):
        """The default settings, the speaker encoder's frames with `volume_dbfs` (the command line's
        `--volume_dbfs`), and `front_end`."""
        return cls(mel_frames=MelFramesConfig(volume_dbfs=volume_dbfs), front_end=front_end)
