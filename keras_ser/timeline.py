"""Emotion probabilities over time for recordings of any length (sliding windows).

`predict_timeline(model, source, window_s=3.0, hop_s=1.0)` cuts windows of
`window_s` seconds every `hop_s` seconds and predicts each with the model's own
preprocessor (`model.preprocessor.batch`, the features used in training) and
the model, `batch_windows` windows at a time.

Windows: window `i` covers `[i * hop, i * hop + window)` samples; only full
windows are predicted, so the tail after the last full window (shorter than
one hop) is not covered. A recording shorter than one window is an error
naming it and both lengths. A window of digital silence (every sample 0) gets
NaN probabilities (the features refuse silence) and is left out of the
summary.

Memory: a path is read in chunks (16-bit PCM WAV with the `wave` module, other
formats with soundfile's `SoundFile.read(frames)`), keeping only the samples
of one batch of windows; what grows with the recording is only the output
(`[windows, classes]` probabilities). Multi-channel audio is averaged to mono.
A file at another sample rate than the model's is resampled window by window
(`tf_pipeline.resample` on each window's samples at the file's rate), so its
windows differ from resampling the whole file only at their edges (the filter
sees zeros past each window).

`write_csv` and `plot_timeline` write the result (`start_s,end_s,<class>...`;
a PNG with one line per class).

Example:

>>> model = keras_ser.from_preset("encoder_stats_emodb")            # doctest: +SKIP
>>> timeline = predict_timeline(model, "interview.wav", 3.0, 1.0)    # doctest: +SKIP
>>> timeline.probabilities.shape, timeline.summary()["top_label"]    # doctest: +SKIP
((598, 7), 'neutral')
"""

import dataclasses
import os
import wave

import numpy as np


class TimelineError(ValueError):
    """A recording that cannot be cut into windows; the message names it."""


@dataclasses.dataclass
class Timeline:
    """Per-window predictions of one recording.

    Attributes:
        starts, ends: float64 `[windows]`, window bounds in seconds.
        probabilities: float32 `[windows, classes]` (NaN rows: silent windows).
        class_names: list of str, the model's classes (the columns).
        duration_s: the recording's length in seconds.
        name: what was predicted (the path, or `"waveform"`).
    """

    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    class_names: list
    duration_s: float
    name: str = "waveform"

    @property
    def labels(self):
        """The top class per window (None for a silent window)."""
        return [None if np.isnan(row).any() else self.class_names[int(np.argmax(row))] for row in self.probabilities]

    def summary(self):
        """Counts, the most frequent label with its share of windows, and the mean probability per class."""
        valid = ~np.isnan(self.probabilities).any(axis=1)
        labels = [label for label in self.labels if label is not None]
        counts = {name: labels.count(name) for name in self.class_names}
        top = max(self.class_names, key=lambda name: counts[name]) if labels else None
        means = self.probabilities[valid].mean(axis=0) if valid.any() else np.full(len(self.class_names), np.nan)
        return {
            "file": self.name,
            "duration_s": round(float(self.duration_s), 3),
            "windows": int(len(self.starts)),
            "silent_windows": int((~valid).sum()),
            "top_label": top,
            "top_share": counts[top] / len(labels) if labels else 0.0,
            "mean_probabilities": {name: float(p) for name, p in zip(self.class_names, means)},
        }


def _sample_count(seconds, rate, what):
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds. Received: {what}={seconds!r}")
    count = int(round(seconds * rate))
    if count < 1:
        raise ValueError(f"{what}={seconds!r} is less than one sample at {rate} Hz")
    return count


class _ArrayReader:
    """Mono samples of an in-memory waveform."""

    def __init__(self, waveform, rate):
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim == 2:
            waveform = waveform.mean(axis=1, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"waveform must be [samples] or [samples, channels]. Received shape: {waveform.shape}")
        self.waveform, self.rate, self.frames = waveform, int(rate), int(waveform.shape[0])

    def read(self, start, stop):
        return self.waveform[start:stop]

    def close(self):
        pass


class _FileReader:
    """Mono float32 samples of an audio file, read forward in chunks; keeps only what is still needed."""

    def __init__(self, path):
        from tf_pipeline.audio import AudioDecodeError

        self.path = os.fspath(path)
        what = f"file '{self.path}'"
        if not os.path.isfile(self.path):
            raise AudioDecodeError(f"Cannot read audio {what}: No such file")
        if os.path.getsize(self.path) == 0:
            raise AudioDecodeError(f"Audio {what}: empty (0 bytes); expected a WAV, FLAC or OGG file")
        self._wave = self._sound = None
        try:
            handle = wave.open(self.path, "rb")
            if handle.getsampwidth() == 2:
                self._wave = handle
                self.rate, self.frames, self.channels = handle.getframerate(), handle.getnframes(), handle.getnchannels()
            else:
                handle.close()
        except (wave.Error, EOFError):
            pass
        if self._wave is None:
            try:
                import soundfile
            except ImportError:
                raise AudioDecodeError(f"Cannot decode audio {what}: not 16-bit PCM WAV; install soundfile for other "
                                       "formats: pip install 'keras-ser[audio]'") from None
            try:
                self._sound = soundfile.SoundFile(self.path)
            except Exception as error:  # LibsndfileError, RuntimeError...
                raise AudioDecodeError(f"Cannot decode audio {what}: not readable audio ({error}). "
                                       "Expected WAV, FLAC or OGG audio.") from None
            self.rate, self.frames, self.channels = self._sound.samplerate, self._sound.frames, self._sound.channels
        if self.channels < 1 or self.rate <= 0:
            self.close()
            raise AudioDecodeError(f"Audio {what} declares {self.channels} channels at {self.rate} Hz")
        self._what = what
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # file sample index of _buffer[0]
        self._position = 0  # next file sample to read

    def _read_chunk(self, count):
        if self._wave is not None:
            raw = self._wave.readframes(count)
            audio = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
            audio = audio[: len(audio) // self.channels * self.channels].reshape(-1, self.channels)
        else:
            audio = self._sound.read(count, dtype="float32", always_2d=True)
        return audio.mean(axis=1, dtype=np.float32) if self.channels > 1 else audio[:, 0]

    def read(self, start, stop):
        """Samples `[start, stop)`; `start` never goes back before an earlier call's `start`."""
        from tf_pipeline.audio import AudioDecodeError

        if start > self._buffer_start:  # drop what no later window needs
            self._buffer = self._buffer[start - self._buffer_start :]
            self._buffer_start = start
        while self._position < stop:
            chunk = self._read_chunk(min(stop - self._position, 1 << 18))
            if len(chunk) == 0:
                raise AudioDecodeError(f"Cannot decode audio {self._what}: truncated; the header declares "
                                       f"{self.frames} samples but only {self._position} follow")
            skip = max(0, self._buffer_start - self._position)  # samples before the buffer (hop > window)
            self._position += len(chunk)
            self._buffer = np.concatenate([self._buffer, chunk[skip:]])
        return self._buffer[start - self._buffer_start : stop - self._buffer_start]

    def close(self):
        for handle in (self._wave, self._sound):
            if handle is not None:
                handle.close()


def window_predictor(model):
    """`(waveforms [B, samples], num_samples [B]) -> probabilities`, one traced function for all batches."""
    import keras

    preprocessor = model.preprocessor
    if keras.backend.backend() != "tensorflow":
        from keras_ser.inference import predictor

        predict = predictor(model)
        return lambda waveforms, lengths: predict(np.asarray(preprocessor.batch(waveforms, lengths)))
    import tensorflow as tf

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.float32),
                                                   tf.TensorSpec([None], tf.int32)])
    def predict(waveforms, lengths):
        return tf.cast(model(preprocessor.batch(waveforms, lengths), training=False), tf.float32)

    return lambda waveforms, lengths: predict(tf.constant(waveforms, tf.float32), tf.constant(lengths, tf.int32))


def predict_timeline(model, source, window_s=3.0, hop_s=1.0, batch_windows=16, _predict=None):
    """Emotion probabilities of every `window_s`-second window, every `hop_s` seconds.

    Args:
        model: a keras-ser model (its `preprocessor`, `feature_config.sample_rate`, `class_names`).
        source: a path (read in chunks; any rate, resampled per window) or a
            mono float waveform `[samples]` at the model's sample rate.
        window_s: window length in seconds. Defaults to 3.0.
        hop_s: seconds from one window's start to the next. Defaults to 1.0.
        batch_windows: windows predicted (and held in memory) at a time.

    Returns:
        A `Timeline` (`starts`, `ends`, `probabilities [windows, classes]`,
        `class_names`, `duration_s`, `summary()`).

    Raises:
        TimelineError: the recording is shorter than one window (names it and both lengths).
        tf_pipeline.AudioDecodeError: the file cannot be read (names it).
        ValueError: bad `window_s`, `hop_s` or `batch_windows`, or the window
            is too short for the model's features.
    """
    import tf_pipeline

    rate = int(model.feature_config.sample_rate)
    if int(batch_windows) < 1:
        raise ValueError(f"batch_windows must be at least 1. Received: batch_windows={batch_windows!r}")
    window, hop = _sample_count(window_s, rate, "window_s"), _sample_count(hop_s, rate, "hop_s")
    is_path = isinstance(source, (str, os.PathLike))
    name = os.fspath(source) if is_path else "waveform"
    reader = _FileReader(source) if is_path else _ArrayReader(source, rate)
    try:
        duration = reader.frames / reader.rate
        available = reader.frames if reader.rate == rate else int(reader.frames * rate // reader.rate)
        n_windows = (available - window) // hop + 1 if available >= window else 0
        if n_windows < 1:
            raise TimelineError(f"{'file ' + repr(name) if is_path else 'waveform'} is too short for one window: "
                                f"{duration:.3f} s, the window is {window / rate:.3f} s (--window_s)")
        predict = _predict or window_predictor(model)
        offsets = np.arange(n_windows, dtype=np.int64) * hop  # window starts in samples at the model's rate
        starts = offsets / rate
        probabilities = []
        for first in range(0, n_windows, int(batch_windows)):
            batch = []
            for offset in offsets[first : first + int(batch_windows)]:
                if reader.rate == rate:
                    samples = reader.read(int(offset), int(offset) + window)
                else:  # the window's samples at the file's rate, resampled on their own
                    begin = int(offset * reader.rate // rate)
                    stop = min(begin + int(round(window / rate * reader.rate)), reader.frames)
                    samples = tf_pipeline.resample(reader.read(begin, stop), reader.rate, rate).numpy()
                    samples = np.pad(samples[:window], (0, max(0, window - len(samples))))
                batch.append(np.asarray(samples, np.float32))
            batch = np.stack(batch)
            silent = ~np.any(batch != 0, axis=1)
            result = np.full((len(batch), len(model.class_names)), np.nan, np.float32)
            if (~silent).any():
                kept = batch[~silent]
                result[~silent] = np.asarray(predict(kept, np.full(len(kept), window, np.int32)))
            probabilities.append(result)
    finally:
        reader.close()
    return Timeline(starts=starts, ends=starts + window / rate, probabilities=np.concatenate(probabilities),
                    class_names=list(model.class_names), duration_s=duration, name=name)


def write_csv(timeline, path):
    """`start_s,end_s,<class>...` rows, one per window (3 decimals for times, 6 for probabilities)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(",".join(["start_s", "end_s"] + list(timeline.class_names)) + "\n")
        for start, end, row in zip(timeline.starts, timeline.ends, timeline.probabilities):
            handle.write(f"{start:.3f},{end:.3f}," + ",".join(f"{p:.6f}" for p in row) + "\n")
    return path


def plot_timeline(timeline, path, title=None):
    """A PNG of the probabilities over time: one line per class at each window's centre."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    centres = (timeline.starts + timeline.ends) / 2
    figure, axes = pyplot.subplots(figsize=(max(6.0, min(24.0, 4.0 + len(centres) / 20)), 3.5))
    try:
        for column, label in enumerate(timeline.class_names):
            axes.plot(centres, timeline.probabilities[:, column], label=label, marker="." if len(centres) < 40 else None)
        axes.set_xlabel("time (s, window centre)")
        axes.set_ylabel("probability")
        axes.set_ylim(0.0, 1.0)
        axes.set_xlim(0.0, max(float(timeline.duration_s), float(timeline.ends[-1])))
        axes.set_title(title or os.path.basename(timeline.name))
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        pyplot.close(figure)
    return path


def format_summary(summary):
    """One line: file, duration, windows, the most frequent label and its share, mean probability per class."""
    means = " ".join(f"{name}={p:.3f}" for name, p in summary["mean_probabilities"].items())
    silent = f" ({summary['silent_windows']} silent)" if summary["silent_windows"] else ""
    return (f"{os.path.basename(summary['file'])}: {summary['duration_s']:.1f} s, {summary['windows']} window{'s' if summary['windows'] != 1 else ''}{silent}, "
            f"mostly {summary['top_label']} ({summary['top_share']:.0%} of windows); mean {means}")
