"""Audio decoding, down-mixing and resampling.

`decode_wav`, `to_mono` and `resample` are TensorFlow ops that also run
inside an exported SavedModel (TF Serving): 16-bit PCM WAV of any rate and
channel count becomes a mono float32 waveform at the model's rate.
`load_audio` is the training-side reader: 16-bit PCM WAV goes through the same
in-graph decoder, every other format (8/24/32-bit and float WAV, FLAC, OGG)
through soundfile (`pip install keras-ser[audio]`).
`check_wav_bytes` is the in-graph counterpart of `load_audio`'s checks: the
`serve_wav` signature of an exported model runs it on each request's bytes, so
bad audio fails with a message that names the row and the problem.
"""

import io
import os

import numpy as np
import tensorflow as tf

from tf_pipeline.config import FeatureConfig

# WAV sample rates `check_wav_bytes` (the serve_wav signature) accepts (Hz).
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 192000
_INT32_LIMIT = 2**31 - 1


class AudioDecodeError(ValueError):
    """Audio that cannot be decoded; the message names the input and the cause."""


def decode_wav(contents):
    """Decodes 16-bit PCM WAV bytes in-graph.

    A thin wrapper over `tf.audio.decode_wav`, which reads 16-bit PCM only
    (other bit depths and float WAV fail with `InvalidArgumentError`).

    Args:
        contents: scalar string tensor, the bytes of a WAV file.

    Returns:
        `(audio, sample_rate)`: float32 `[samples, channels]` in [-1, 1] and a
        scalar int32 rate.

    Example:

    >>> audio, rate = decode_wav(tf.io.read_file("03a01Fa.wav"))  # doctest: +SKIP
    """
    audio, sample_rate = tf.audio.decode_wav(contents)
    return audio, sample_rate


def to_mono(audio):
    """Down-mixes `[samples, channels]` to `[samples]` by averaging channels."""
    audio = tf.convert_to_tensor(audio)
    if audio.shape.rank == 1:
        return audio
    return tf.reduce_mean(audio, axis=-1)


def _gcd(a, b):
    def body(x, y):
        return y, tf.math.floormod(x, y)

    result, _ = tf.while_loop(lambda x, y: y > 0, body, (a, b))
    return result


def _polyphase_bank(up, down):
    """Filter bank `[up, taps]` of scipy's resample_poly filter, by phase.

    The filter is `firwin(2 * half_len + 1, 1 / max(up, down),
    window=("kaiser", 5.0)) * up` with `half_len = 10 * max(up, down)`,
    the one `scipy.signal.resample_poly` uses by default.
    """
    up64 = tf.cast(up, tf.float64)
    half_len = 10 * tf.maximum(up, down)
    half64 = tf.cast(half_len, tf.float64)
    cutoff = 1.0 / tf.cast(tf.maximum(up, down), tf.float64)
    beta = tf.constant(5.0, tf.float64)

    def kernel(d):
        d = tf.cast(d, tf.float64)
        arg = cutoff * d
        safe = tf.where(tf.equal(arg, 0.0), tf.ones_like(arg), arg)
        sinc = tf.where(tf.equal(arg, 0.0), tf.ones_like(arg), tf.sin(np.pi * safe) / (np.pi * safe))
        ratio = tf.clip_by_value(d / half64, -1.0, 1.0)
        window = tf.math.special.bessel_i0(beta * tf.sqrt(1.0 - ratio * ratio)) / tf.math.special.bessel_i0(beta)
        inside = tf.cast(tf.abs(d) <= half64, tf.float64)
        return cutoff * sinc * window * inside

    dc_gain = tf.reduce_sum(kernel(tf.range(-half_len, half_len + 1)))
    taps = (2 * half_len) // up + 2
    phase = tf.range(up)[:, None]
    k_min = -tf.math.floordiv(half_len - phase, up)  # ceil((r - half_len) / up)
    offsets = phase - (k_min + tf.range(taps)[None, :]) * up
    bank = kernel(offsets) / dc_gain * up64
    return tf.cast(bank, tf.float32), taps


_CHUNK = 4096  # resampler outputs computed per step


def resample(waveform, rate_in, rate_out=16000):
    """Resamples a mono waveform with core TF ops (windowed-sinc polyphase).

    Computes the same result as `scipy.signal.resample_poly(x, up, down)`
    with `up / down = rate_out / rate_in` in lowest terms (Kaiser window,
    beta 5, filter half-length `10 * max(up, down)`, zero padding at the
    edges), to float32 precision. `rate_in` may be a tensor (e.g. the rate a
    WAV header declares), so this runs inside a SavedModel. Output length is
    `ceil(samples * up / down)`. Outputs are computed in chunks of 4096, so
    memory stays small for long audio.

    Args:
        waveform: float32 `[samples]`.
        rate_in: int or int tensor, the waveform's rate in Hz.
        rate_out: int, the target rate in Hz. Defaults to `16000`.

    Returns:
        float32 `[ceil(samples * rate_out / rate_in)]`.

    Example:

    >>> resample(tf.zeros([44100]), 44100, 16000).shape
    TensorShape([16000])
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    if isinstance(rate_in, (int, np.integer)) and rate_in <= 0:
        raise ValueError(f"`rate_in` must be a positive sample rate in Hz. Received: rate_in={rate_in}")
    rate_in = tf.cast(rate_in, tf.int32)
    rate_out_t = tf.constant(rate_out, tf.int32)
    check = tf.debugging.assert_positive(rate_in, message="the sample rate must be positive")

    def _resample():
        with tf.control_dependencies([check]):
            g = _gcd(rate_out_t, rate_in)
        up = rate_out_t // g
        down = rate_in // g
        bank, taps = _polyphase_bank(up, down)
        # Index arithmetic in int64: samples * up overflows int32 for long audio at co-prime rates.
        up64, down64 = tf.cast(up, tf.int64), tf.cast(down, tf.int64)
        half_len = 10 * tf.maximum(up64, down64)
        length = tf.cast(tf.shape(waveform)[0], tf.int64)
        n_out = (length * up64 + down64 - 1) // down64
        # Zero padding on both sides stands for the signal's zero extension.
        pad = half_len // up64 + 1
        padded = tf.pad(waveform, [[pad, pad + tf.cast(taps, tf.int64)]])
        num_chunks = (n_out + _CHUNK - 1) // _CHUNK

        def chunk(start):
            n = start + tf.range(_CHUNK, dtype=tf.int64)
            m = n * down64
            k_min = -tf.math.floordiv(half_len - m, up64)  # ceil((m - half_len) / up)
            index = tf.clip_by_value(k_min + pad, 0, length + pad)[:, None] + tf.range(taps, dtype=tf.int64)[None, :]
            weights = tf.gather(bank, tf.math.floormod(m, up64))
            return tf.reduce_sum(tf.gather(padded, index) * weights, axis=1)

        # Outputs in chunks bound the memory of the [outputs, taps] gathers.
        chunks = tf.map_fn(chunk, tf.range(num_chunks, dtype=tf.int64) * _CHUNK,
                           fn_output_signature=tf.TensorSpec([_CHUNK], tf.float32))
        return tf.reshape(chunks, [-1])[:n_out]

    return tf.cond(tf.equal(rate_in, rate_out_t), lambda: tf.identity(waveform), _resample)


def _audio_config(config):
    """The config whose `sample_rate` audio is brought to (any feature config, or a FeatureConfig dict)."""
    if not isinstance(config, dict) and hasattr(config, "sample_rate"):
        return config
    return FeatureConfig.coerce(config, "config")


def decode_to_waveform(contents, config=None):
    """16-bit PCM WAV bytes -> mono float32 waveform at `config.sample_rate`.

    In-graph: decode, down-mix, resample. Used by the `serve_wav` signature.
    """
    config = _audio_config(config)
    audio, rate = decode_wav(contents)
    return resample(to_mono(audio), rate, config.sample_rate)


def batch_decode_wav(audio_bytes, config=None):
    """Decodes a batch of WAV byte strings of different rates and lengths.

    Args:
        audio_bytes: string `[batch]`, each 16-bit PCM WAV.
        config: `FeatureConfig` or its dict.

    Returns:
        `(waveforms, num_samples)`: float32 `[batch, max_samples]`, zero-padded,
        and int32 `[batch]`. Row `i` equals `decode_to_waveform(audio_bytes[i])`.
    """
    config = _audio_config(config)
    ragged = tf.map_fn(
        lambda contents: tf.RaggedTensor.from_tensor(decode_to_waveform(contents, config)[None, :])[0],
        audio_bytes,
        fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
    )
    return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)


def check_wav_bytes(contents, row, config, max_seconds=None):
    """In-graph checks of one WAV byte string; returns its sample count when all pass.

    The graph-side counterpart of `load_audio`'s checks, run by the
    `serve_wav` signature of an exported model before `batch_decode_wav`:
    the bytes must be a complete 16-bit PCM WAV file (RIFF/WAVE header,
    text chunk ids, a fmt chunk before the data chunk, as many data bytes as
    declared) at 4 kHz to 192 kHz (`MIN_SAMPLE_RATE`, `MAX_SAMPLE_RATE`),
    short enough to resample to `config.sample_rate` with int32 indices and
    at most `max_seconds` long. Each check is a `tf.debugging.Assert`, run
    one after the other, so a bad input fails with one `InvalidArgumentError`
    whose message names `audio_bytes[row]` and the first problem.

    Args:
        contents: scalar string tensor, the bytes of one file.
        row: scalar int tensor, the row of `contents` in its batch (for the message).
        config: the model's feature config (its `sample_rate`).
        max_seconds: float or None. Longest accepted audio; None accepts any length.

    Returns:
        scalar int64 tensor, the number of samples (frames) of the file, with
        every check as a control dependency.

    Example:

    >>> checked = tf.map_fn(lambda a: check_wav_bytes(a[0], a[1], config, 30.0),
    ...                     (audio_bytes, tf.range(tf.shape(audio_bytes)[0])),
    ...                     fn_output_signature=tf.int64)   # doctest: +SKIP
    """
    length = tf.cast(tf.strings.length(contents), tf.int64)
    padded = tf.strings.join([contents, b"\0" * 12])

    def fmt(template, *values):
        return tf.strings.format(template, [row, *values])

    not_empty = tf.debugging.Assert(
        length > 0,
        [fmt("audio_bytes[{}] is empty (0 bytes); expected the bytes of a 16-bit PCM WAV file")],
        name="check_not_empty",
    )
    with tf.control_dependencies([not_empty]):
        is_wav = tf.logical_and(
            tf.equal(tf.strings.substr(padded, 0, 4), "RIFF"), tf.equal(tf.strings.substr(padded, 8, 4), "WAVE")
        )
        is_wav = tf.logical_and(is_wav, length >= 12)
    header = tf.debugging.Assert(
        is_wav,
        [fmt("audio_bytes[{}] is not a WAV file ({} bytes without a RIFF/WAVE header); expected 16-bit PCM WAV", length)],
        name="check_wav_header",
    )

    def u32(offset):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, tf.cast(offset, tf.int32), 4), tf.uint8), tf.int64)
        return raw[0] + raw[1] * 256 + raw[2] * 65536 + raw[3] * 16777216

    def is_text(offset):
        raw = tf.io.decode_raw(tf.strings.substr(padded, tf.cast(offset, tf.int32), 4), tf.uint8)
        return tf.reduce_all(tf.logical_and(raw >= 32, raw <= 126))

    def more(offset, size, found, fmt_seen, bad_at, steps):
        going = tf.logical_and(offset + 8 <= length, tf.logical_not(found))
        return tf.logical_and(tf.logical_and(going, bad_at < 0), steps < 4096)

    def step(offset, size, found, fmt_seen, bad_at, steps):
        chunk_id = tf.strings.substr(padded, tf.cast(offset, tf.int32), 4)
        chunk_size = u32(offset + 4)
        is_data = tf.equal(chunk_id, "data")
        skip = offset + 8 + chunk_size + tf.math.floormod(chunk_size, 2)
        bad_at = tf.where(is_text(offset), bad_at, offset)
        fmt_seen = tf.logical_or(fmt_seen, tf.equal(chunk_id, "fmt "))
        return tf.where(is_data, offset, skip), chunk_size, is_data, fmt_seen, bad_at, steps + 1

    with tf.control_dependencies([header]):
        start = tf.constant(12, tf.int64)
    offset, size, found, fmt_seen, bad_at, _ = tf.while_loop(
        more, step, (start, tf.constant(0, tf.int64), tf.constant(False), tf.constant(False),
                     tf.constant(-1, tf.int64), tf.constant(0))
    )
    # The decoder quotes chunk ids in its errors: make sure they are text first.
    chunks_ok = tf.debugging.Assert(
        bad_at < 0,
        [fmt("audio_bytes[{}] is not a valid WAV file: the chunk header at byte {} is not a chunk id (corrupt "
             "header)", bad_at)],
        name="check_chunk_ids",
    )
    with tf.control_dependencies([chunks_ok]):
        has_data = tf.debugging.Assert(
            found,
            [fmt("audio_bytes[{}] is not a complete WAV file: no data chunk in its {} bytes", length)],
            name="check_data_chunk",
        )
    with tf.control_dependencies([has_data]):
        has_format = tf.debugging.Assert(
            fmt_seen,
            [fmt("audio_bytes[{}] is not a PCM WAV file: no fmt chunk before its data chunk")],
            name="check_fmt_chunk",
        )
    available = length - offset - 8
    with tf.control_dependencies([has_format]):
        complete = tf.debugging.Assert(
            tf.logical_or(tf.logical_not(found), size <= available),
            [fmt("audio_bytes[{}] is a truncated WAV file: its header declares {} bytes of audio data but only {} "
                 "follow", size, available)],
            name="check_truncation",
        )
    with tf.control_dependencies([complete]):
        audio, rate = decode_wav(contents)
    samples = tf.cast(tf.shape(audio)[0], tf.int64)
    rate = tf.cast(rate, tf.int64)
    rate_ok = tf.debugging.Assert(
        tf.logical_and(rate >= MIN_SAMPLE_RATE, rate <= MAX_SAMPLE_RATE),
        [fmt(f"audio_bytes[{{}}] declares a sample rate of {{}} Hz; expected {MIN_SAMPLE_RATE} to "
             f"{MAX_SAMPLE_RATE} Hz", rate)],
        name="check_sample_rate",
    )
    with tf.control_dependencies([rate_ok]):
        target = tf.constant(config.sample_rate, tf.int64)
        up = target // _gcd(target, tf.maximum(rate, 1))
        # The resampler indexes output samples in int32: samples * up must fit.
        fits = tf.debugging.Assert(
            samples * up <= _INT32_LIMIT,
            [fmt("audio_bytes[{}] is too long to resample in-graph: {} samples at {} Hz; send 16 kHz audio or "
                 "the waveform signature", samples, rate)],
            name="check_resample_size",
        )
    checks = [fits]
    if max_seconds is not None:
        with tf.control_dependencies([fits]):
            limit = tf.cast(tf.math.floor(float(max_seconds) * tf.cast(rate, tf.float64)), tf.int64)
            checks = [tf.debugging.Assert(
                samples <= limit,
                [fmt(f"audio_bytes[{{}}] is too long: {{}} samples at {{}} Hz; at most {max_seconds:g} s are accepted "
                     "(split longer recordings)", samples, rate)],
                name="check_duration",
            )]
    with tf.control_dependencies(checks):
        return tf.identity(samples)


def _describe(source):
    return f"file '{os.fspath(source)}'" if isinstance(source, (str, os.PathLike)) else "bytes"


def tf_error_message(error):
    """The first line of a TensorFlow op error without the function-node noise."""
    text = getattr(error, "message", str(error)).strip().splitlines()[0]
    if "}} " in text:
        text = text.split("}} ", 1)[1]
    return text.split(" [Op:", 1)[0].strip()


def _wav_truncation(contents):
    """A message when RIFF/WAVE bytes hold less audio data than declared, else None."""
    if contents[:4] != b"RIFF" or contents[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(contents):
        chunk_id = contents[offset : offset + 4]
        size = int.from_bytes(contents[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            available = len(contents) - offset - 8
            if size > available:
                return f"truncated WAV: the header declares {size} bytes of audio data but only {available} follow"
            return None
        offset += 8 + size + (size & 1)
    return "WAV without a data chunk"


def load_audio(source, config=None):
    """Reads an audio file (or its bytes) as a mono float32 waveform.

    16-bit PCM WAV is decoded by the in-graph decoder (the serving path);
    other formats go through soundfile (`pip install keras-ser[audio]`).
    Channels are averaged and the rate converted to `config.sample_rate` with
    `resample`.

    Args:
        source: a path (str or `os.PathLike`) or the file's bytes.
        config: `FeatureConfig` or its dict.

    Returns:
        float32 numpy array `[samples]`.

    Raises:
        AudioDecodeError: the file is missing, empty, or not audio that can
            be decoded; the message names it.

    Example:

    >>> waveform = load_audio("03a01Fa.wav")  # doctest: +SKIP
    >>> waveform.shape, waveform.dtype        # doctest: +SKIP
    ((30372,), dtype('float32'))
    """
    config = _audio_config(config)
    what = _describe(source)
    if isinstance(source, (bytes, bytearray)):
        contents = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                contents = handle.read()
        except OSError as error:
            raise AudioDecodeError(f"Cannot read audio {what}: {error.strerror}") from None
    if not contents:
        raise AudioDecodeError(f"Audio {what}: empty (0 bytes); expected a WAV, FLAC or OGG file")
    truncation = _wav_truncation(contents)
    if truncation:
        raise AudioDecodeError(f"Cannot decode audio {what}: {truncation}")
    if contents[:4] != b"RIFF":
        # FLAC, OGG, ...: straight to soundfile (the WAV decoder would only log its refusal).
        audio, rate = _read_with_soundfile(contents, what, "no RIFF header: not a WAV file")
    else:
        try:
            audio, rate = decode_wav(tf.constant(contents))
            audio, rate = audio.numpy(), int(rate.numpy())
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, UnicodeDecodeError) as tf_error:
            audio, rate = _read_with_soundfile(contents, what, tf_error_message(tf_error))
    if audio.ndim == 2 and audio.shape[1] == 0:
        raise AudioDecodeError(f"Audio {what} has no channels")
    mono = to_mono(tf.constant(audio, tf.float32))
    if rate <= 0:
        raise AudioDecodeError(f"Audio {what} declares an invalid sample rate: {rate}")
    return resample(mono, rate, config.sample_rate).numpy()


def _read_with_soundfile(contents, what, reason):
    try:
        import soundfile
    except ImportError:
        raise AudioDecodeError(
            f"Cannot decode audio {what} in-graph ({reason}). Only 16-bit PCM WAV is decoded without "
            "soundfile; install it for other formats: pip install 'keras-ser[audio]'"
        ) from None
    try:
        audio, rate = soundfile.read(io.BytesIO(contents), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        detail = str(error).split(": ", 1)[-1] if "BytesIO" in str(error) else str(error)
        raise AudioDecodeError(
            f"Cannot decode audio {what}: not readable audio (in-graph WAV decoder: {reason}; "
            f"soundfile: {detail}). Expected WAV, FLAC or OGG audio."
        ) from None
    return audio, int(rate)
