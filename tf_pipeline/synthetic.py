"""A small, deterministic, learnable corpus of speech-like emotional utterances.

Each speaker is a source-filter voice: a glottal pulse train at the speaker's
pitch through formant resonators scaled by the speaker's vocal-tract length.
Each emotion is a prosody profile: pitch level and range, tempo (syllables
per second), energy and spectral tilt, and pitch jitter. Utterances are
strings of syllables (a vowel with a noise onset) whose count, vowels and
timing vary per utterance from a seeded generator, so the classes overlap
enough to make the task non-trivial but remain learnable across speakers.

Files use EMO-DB's naming (`03a01Fa.wav`), 16 kHz mono 16-bit PCM.
"""

import json
import os
import wave

import numpy as np
from scipy import signal

from tf_pipeline.atomic import write_atomic
from tf_pipeline.atomic import write_text_atomic

SAMPLE_RATE = 16000

# pitch factor, pitch range (semitones), syllables/s, energy (dB), tilt (one-pole lowpass
# coefficient, higher = darker), jitter (fraction of f0)
EMOTION_PROFILES = {
    "N": dict(pitch=1.00, range=2.0, tempo=4.0, energy=0.0, tilt=0.90, jitter=0.005),
    "W": dict(pitch=1.35, range=6.0, tempo=5.0, energy=8.0, tilt=0.55, jitter=0.010),
    "F": dict(pitch=1.25, range=8.0, tempo=4.6, energy=4.0, tilt=0.75, jitter=0.008),
    "T": dict(pitch=0.85, range=1.0, tempo=2.8, energy=-6.0, tilt=0.97, jitter=0.004),
    "L": dict(pitch=0.90, range=1.5, tempo=3.2, energy=-3.0, tilt=0.95, jitter=0.003),
    "A": dict(pitch=1.45, range=4.0, tempo=5.5, energy=1.0, tilt=0.80, jitter=0.030),
    "E": dict(pitch=0.95, range=3.0, tempo=3.0, energy=1.0, tilt=0.85, jitter=0.012),
}

# First three formants (Hz) of a few vowels for an average adult vocal tract.
VOWELS = np.array(
    [
        [730, 1090, 2440],  # a
        [530, 1840, 2480],  # e
        [270, 2290, 3010],  # i
        [570, 840, 2410],  # o
        [300, 870, 2240],  # u
    ],
    dtype=np.float64,
)

_MANIFEST = "synthetic.json"


def _speaker_voice(index, rng):
    female = index % 2 == 1
    base = rng.uniform(190, 235) if female else rng.uniform(100, 135)
    tract = rng.uniform(1.08, 1.18) if female else rng.uniform(0.92, 1.02)
    return dict(f0=base, tract=tract, breath=rng.uniform(0.01, 0.04))


def _resonator(x, frequency, bandwidth):
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * frequency / SAMPLE_RATE
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return signal.lfilter([1 - r], a, x)


def _utterance(voice, profile, rng):
    n_syllables = int(rng.integers(5, 11))
    tempo = profile["tempo"] * rng.uniform(0.9, 1.1)
    durations = rng.uniform(0.7, 1.3, n_syllables) / tempo
    total = int((durations.sum() + 0.3) * SAMPLE_RATE)
    t = np.arange(total) / SAMPLE_RATE

    # Pitch contour: level, a declination and a rise-fall per phrase, plus jitter.
    f0 = voice["f0"] * profile["pitch"] * rng.uniform(0.95, 1.05)
    semitones = profile["range"] * np.sin(np.pi * t / t[-1] * rng.uniform(1.0, 2.5) + rng.uniform(0, np.pi))
    contour = f0 * 2 ** ((semitones - 1.5 * t / t[-1]) / 12)
    contour *= 1 + profile["jitter"] * rng.standard_normal(total)
    phase = np.cumsum(contour) / SAMPLE_RATE
    # Glottal source: a sawtooth-like pulse shape, smoothed.
    source = (phase % 1.0) ** 3 - 0.25

    out = np.zeros(total)
    envelope_all = np.zeros(total)
    start = int(0.15 * SAMPLE_RATE)
    for duration in durations:
        length = int(duration * SAMPLE_RATE)
        stop = min(start + length, total)
        segment = slice(start, stop)
        vowel = VOWELS[rng.integers(len(VOWELS))] * voice["tract"] * rng.uniform(0.95, 1.05, 3)
        excitation = source[segment]
        voiced = sum(
            _resonator(excitation, frequency, 60 + 0.05 * frequency) * gain
            for frequency, gain in zip(vowel, (1.0, 0.6, 0.3))
        )
        onset = int(0.25 * (stop - start))
        noise = rng.standard_normal(stop - start) * np.r_[np.linspace(1, 0, onset), np.zeros(stop - start - onset)]
        envelope = np.sin(np.linspace(0, np.pi, stop - start)) ** 0.7
        out[segment] += voiced * envelope + 0.15 * _resonator(noise, 3500 * voice["tract"], 1500)
        envelope_all[segment] = envelope
        start = stop

    out += voice["breath"] * rng.standard_normal(total) * (0.2 + envelope_all)
    # Spectral tilt: one-pole low-pass, stronger for darker emotions.
    tilt = profile["tilt"]
    out = signal.lfilter([1 - tilt], [1, -tilt], out)
    peak = np.max(np.abs(out)) + 1e-9
    level = 0.3 * 10 ** (profile["energy"] / 20) * rng.uniform(0.8, 1.2)
    out = out / peak * min(level, 0.95)
    return out.astype(np.float32)


def _write_wav(path, waveform):
    pcm = np.clip(np.round(waveform * 32767), -32768, 32767).astype("<i2")

    def write(stream):
        with wave.open(stream, "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(SAMPLE_RATE)
            handle.writeframes(pcm.tobytes())

    write_atomic(path, write)


def write_corpus(out_dir, n_speakers=4, per_class=8, emotions="WLEAFTN", seed=0):
    """Writes the synthetic corpus into `out_dir` (skipped when already there).

    Speakers are numbered 01, 02, ...; file `{speaker}a{NN}{emotion}a.wav`.
    The same arguments always give the same bytes. A folder made with other
    arguments is an error, never silently mixed.

    Args:
        out_dir: folder to write into (created).
        n_speakers: int, 2..99. Defaults to `4`.
        per_class: int, utterances per speaker and emotion, 1..99. Defaults to `8`.
        emotions: EMO-DB emotion letters to include. Defaults to all seven
            (`"WLEAFTN"`).
        seed: int. Defaults to `0`.

    Returns:
        The list of written (or already present) file paths.
    """
    if not isinstance(n_speakers, int) or not 2 <= n_speakers <= 99:
        raise ValueError(f"n_speakers must be an integer in 2..99. Received: n_speakers={n_speakers!r}")
    if not isinstance(per_class, int) or not 1 <= per_class <= 99:
        raise ValueError(f"per_class must be an integer in 1..99. Received: per_class={per_class!r}")
    unknown = [letter for letter in emotions if letter not in EMOTION_PROFILES]
    if unknown or len(set(emotions)) < 2 or len(set(emotions)) != len(emotions):
        raise ValueError(
            f"emotions must be two or more distinct EMO-DB letters from {''.join(EMOTION_PROFILES)}. "
            f"Received: emotions={emotions!r}"
        )
    settings = dict(n_speakers=n_speakers, per_class=per_class, emotions=emotions, seed=seed, version=1)
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, _MANIFEST)
    names = [
        f"{speaker:02d}a{index:02d}{letter}a.wav"
        for speaker in range(1, n_speakers + 1)
        for letter in emotions
        for index in range(1, per_class + 1)
    ]
    paths = [os.path.join(out_dir, name) for name in names]
    if os.path.exists(manifest):
        with open(manifest) as handle:
            existing = json.load(handle)
        if existing != settings:
            raise ValueError(
                f"{out_dir} holds a synthetic corpus made with other settings ({existing}); "
                f"asked for {settings}. Use another folder."
            )
        if all(os.path.exists(path) for path in paths):
            return paths
    elif any(name.endswith(".wav") for name in os.listdir(out_dir)):
        raise ValueError(f"{out_dir} already holds WAV files that are not a synthetic corpus; use an empty folder")

    rng = np.random.default_rng(seed)
    voices = [_speaker_voice(index, rng) for index in range(n_speakers)]
    for speaker, voice in enumerate(voices, start=1):
        for letter in emotions:
            for index in range(1, per_class + 1):
                # One generator per file: any file can be regenerated alone.
                file_rng = np.random.default_rng([seed, speaker, ord(letter), index])
                path = os.path.join(out_dir, f"{speaker:02d}a{index:02d}{letter}a.wav")
                _write_wav(path, _utterance(voice, EMOTION_PROFILES[letter], file_rng))
    write_text_atomic(manifest, json.dumps(settings, sort_keys=True))
    return paths
