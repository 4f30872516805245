"""Channel copies: training utterances heard through another microphone or room.

A training-side lever of the recipes on frozen encoders' features
(`TrainConfig.channel_copies`, `keras-ser loso --channel_copies=eq,reverb`):
each training utterance is also heard through a random channel, and the
pooled features of every copy are added to the training rows with the
utterance's label and inner-fold group. The copies are never scored: the
probe's inner folds choose `C` on the held-out group's own utterances, and
the test part is left as it is. A model trained so is the same model (the
head reads the same features); only what it was fitted on differs.

Kinds (`CHANNEL_KINDS`):

- `"eq"` (`equalised`): a smooth random equaliser, gains drawn in +-6 dB at
  the octaves 125 Hz .. 4 kHz: another microphone's or line's colouring.
- `"reverb"` (`reverberated`): a synthetic room, exponentially decaying
  noise with RT60 drawn in 0.2 .. 0.7 s and a direct-to-reverberant ratio
  in 0 .. 10 dB.
- `"noise"` (`noisy`): stationary background noise, its spectrum sloping by
  0 (white) to -6 dB per octave, added 10 .. 30 dB below the utterance's
  RMS.

Each draw is seeded by the draw's number and a checksum of the utterance's
samples (`heard_through`), so a copy does not depend on which utterances
were copied before it, and a feature store keyed by file finds it again.
These transforms run on the training data only, in NumPy; nothing of them
is part of a model or its export.
"""

import zlib

import numpy as np

CHANNEL_KINDS = ("eq", "reverb", "noise")
# The octave centres of the random equaliser and the range of its gains.
EQ_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
EQ_GAIN_DB = 6.0
# The synthetic room: RT60 range, direct-to-reverberant ratio range, impulse-response length, pre-delay.
ROOM_RT60_S = (0.2, 0.7)
ROOM_DRR_DB = (0.0, 10.0)
ROOM_LENGTH_S = 0.8
ROOM_PREDELAY_S = 0.002
# The background noise: its signal-to-noise ratio (against the utterance's RMS) and spectral slope ranges.
NOISE_SNR_DB = (10.0, 30.0)
NOISE_SLOPE_DB_PER_OCTAVE = (-6.0, 0.0)
# A copy louder than full scale is scaled to this peak (the front end sets the level anyway).
MAX_PEAK = 0.99


def equalised(waveform, rng, sample_rate=16000):
    """`waveform` through a smooth random equaliser (zero phase, applied to its spectrum).

    Gains are drawn uniformly in [-6, 6] dB at the octaves 125 Hz .. 4 kHz
    and interpolated linearly over log frequency (flat below 125 Hz and
    above 4 kHz).

    Args:
        waveform: float numpy array `[samples]`.
        rng: a `numpy.random.Generator` (the draw).
        sample_rate: int. Defaults to `16000`.

    Returns:
        float64 numpy array of the same length.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> equalised(np.ones(1600), rng).shape
    (1600,)
    """
    centres = np.asarray(EQ_CENTRES_HZ)
    gains_db = rng.uniform(-EQ_GAIN_DB, EQ_GAIN_DB, len(centres))
    frequencies = np.maximum(np.fft.rfftfreq(len(waveform), 1.0 / sample_rate), 1.0)
    curve = np.interp(np.log(frequencies), np.log(centres), gains_db)
    return np.fft.irfft(np.fft.rfft(waveform) * 10.0 ** (curve / 20.0), n=len(waveform))


def room_response(rng, sample_rate=16000):
    """The impulse response of a random synthetic room (see the module docstring).

    A unit direct path, silence for 2 ms, then Gaussian noise decaying by
    60 dB in RT60 seconds, scaled to the drawn direct-to-reverberant energy
    ratio; 0.8 s long.

    Example:

    >>> response = room_response(np.random.default_rng(0))
    >>> response.shape, float(response[0])
    ((12800,), 1.0)
    """
    rt60 = rng.uniform(*ROOM_RT60_S)
    time_s = np.arange(int(ROOM_LENGTH_S * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(time_s)) * 10.0 ** (-3.0 * time_s / rt60)
    tail[: int(ROOM_PREDELAY_S * sample_rate)] = 0.0
    tail *= 10.0 ** (-rng.uniform(*ROOM_DRR_DB) / 20.0) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


def reverberated(waveform, rng, sample_rate=16000):
    """`waveform` in a random synthetic room (`room_response`), cut to its own length.

    Example:

    >>> click = np.zeros(16000); click[0] = 1.0
    >>> heard = reverberated(click, np.random.default_rng(0))
    >>> heard.shape, round(float(heard[0]), 6)
    ((16000,), 1.0)
    """
    response = room_response(rng, sample_rate)
    size = len(waveform) + len(response) - 1
    n_fft = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(waveform, n_fft) * np.fft.rfft(response, n_fft)
    return np.fft.irfft(spectrum, n_fft)[: len(waveform)]


def noisy(waveform, rng, sample_rate=16000):
    """`waveform` with stationary random noise added at a random level and colour.

    Gaussian noise shaped to a spectrum sloping by a drawn 0 .. -6 dB per
    octave (white to brown; -3 is pink; flat below 50 Hz), scaled to a
    drawn 10 .. 30 dB below the RMS of `waveform` (the whole utterance, its
    pauses included), and added.

    Example:

    >>> tone = np.sin(np.arange(16000) * 0.05)
    >>> heard = noisy(tone, np.random.default_rng(0))
    >>> snr = 10 * np.log10(np.mean(tone**2) / np.mean((heard - tone) ** 2))
    >>> bool(10.0 <= snr <= 30.0)
    True
    """
    slope_db = rng.uniform(*NOISE_SLOPE_DB_PER_OCTAVE)
    snr_db = rng.uniform(*NOISE_SNR_DB)
    frequencies = np.maximum(np.fft.rfftfreq(len(waveform), 1.0 / sample_rate), 50.0)
    spectrum = np.fft.rfft(rng.standard_normal(len(waveform))) * (frequencies / 50.0) ** (slope_db / 20.0 / np.log10(2))
    noise = np.fft.irfft(spectrum, n=len(waveform))
    power = np.mean(np.square(waveform))
    noise *= np.sqrt(power / max(np.mean(np.square(noise)), 1e-30) * 10.0 ** (-snr_db / 10.0))
    return waveform + noise


TRANSFORMS = {"eq": equalised, "reverb": reverberated, "noise": noisy}


def check_kinds(kinds):
    """`kinds` as a tuple of `CHANNEL_KINDS` names (a comma-separated string or a sequence; empty: none).

    Raises:
        ValueError: an unknown or repeated kind, listing the known ones.

    Example:

    >>> check_kinds("eq,reverb")
    ('eq', 'reverb')
    >>> check_kinds(())
    ()
    """
    if kinds is None:
        return ()
    if isinstance(kinds, str):
        kinds = [kind.strip() for kind in kinds.split(",") if kind.strip()]
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in CHANNEL_KINDS]
    if unknown or len(set(kinds)) != len(kinds):
        raise ValueError(f"channel_copies must name distinct kinds of {CHANNEL_KINDS}. Received: "
                         f"channel_copies={kinds!r}")
    return kinds


def copy_keys(kinds, draws):
    """`(kind, draw)` of every copy of an utterance: `draws` draws of each kind, draw by draw.

    Example:

    >>> copy_keys(("eq", "reverb"), 2)
    (('eq', 0), ('reverb', 0), ('eq', 1), ('reverb', 1))
    """
    return tuple((kind, draw) for draw in range(draws) for kind in check_kinds(kinds))


def heard_through(waveform, kind, draw, sample_rate=16000):
    """One channel copy of `waveform`: `kind`'s transform with the random draw of (`draw`, the samples).

    The draw is seeded by `draw` and the CRC-32 of the float32 samples, so
    the same utterance gets the same copy in any order and process. A copy
    whose peak exceeds 0.99 is scaled down to it.

    Args:
        waveform: float numpy array `[samples]` in [-1, 1].
        kind: one of `CHANNEL_KINDS`.
        draw: int >= 0. Which draw (copies of different draws differ).
        sample_rate: int. Defaults to `16000`.

    Returns:
        float32 numpy array of the same length.

    Example:

    >>> tone = np.sin(np.arange(16000) * 0.05).astype("float32") * 0.5
    >>> copy = heard_through(tone, "eq", 0)
    >>> copy.shape, bool(np.array_equal(copy, heard_through(tone, "eq", 0)))
    ((16000,), True)
    """
    (kind,) = check_kinds((kind,))
    waveform = np.asarray(waveform, np.float32)
    rng = np.random.default_rng([int(draw), zlib.crc32(waveform.tobytes())])
    out = TRANSFORMS[kind](waveform.astype(np.float64), rng, sample_rate)
    peak = np.max(np.abs(out)) if len(out) else 0.0
    return (out * (MAX_PEAK / peak if peak > MAX_PEAK else 1.0)).astype(np.float32)


def describe(kinds, draws):
    """The lever in words, for reports (empty without copies).

    Example:

    >>> describe(("eq", "reverb"), 3)
    'channel copies: 3 draws of a random equaliser and a synthetic room per training utterance (6 copies)'
    >>> describe(("eq", "reverb", "noise"), 1)
    'channel copies: 1 draw of a random equaliser, a synthetic room and background noise per training utterance (3 copies)'
    """
    kinds = check_kinds(kinds)
    if not kinds:
        return ""
    names = {"eq": "a random equaliser", "reverb": "a synthetic room", "noise": "background noise"}
    listed = [names[kind] for kind in kinds]
    listed = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    return (f"channel copies: {draws} draw{'s' if draws != 1 else ''} of {listed} per training utterance "
            f"({draws * len(kinds)} copies)")
