"""Decoding, down-mixing and resampling, and what bad audio gives."""

import io

import numpy as np
import pytest
import scipy.signal
import soundfile
import tensorflow as tf

import tf_pipeline
from conftest import tone, wav_bytes
from tf_pipeline.audio import AudioDecodeError, batch_decode_wav, decode_to_waveform, load_audio, resample


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 11025])
def test_resample_matches_scipy_resample_poly(rate):
    x = tone(1.3, rate=rate, seed=rate) + np.random.default_rng(rate).uniform(-0.2, 0.2, int(1.3 * rate)).astype(np.float32)
    g = np.gcd(16000, rate)
    reference = scipy.signal.resample_poly(x.astype(np.float64), 16000 // g, rate // g)
    ours = tf.function(lambda w, r: resample(w, r, 16000))(x, tf.constant(rate)).numpy()
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_resample_same_rate_is_identity():
    x = tone(0.2)
    np.testing.assert_array_equal(resample(x, 16000).numpy(), x)


def test_resample_rejects_non_positive_rate():
    with pytest.raises(ValueError, match="rate_in=0"):
        resample(tone(0.1), 0)


def test_decode_wav_in_graph_matches_soundfile(emodb_dir):
    path = f"{emodb_dir}/03a01Fa.wav"
    reference, rate = soundfile.read(path, dtype="float32")
    ours = decode_to_waveform(tf.io.read_file(path)).numpy()
    np.testing.assert_array_equal(ours, reference)
    assert load_audio(path).shape == (30372,)


def test_stereo_is_averaged():
    left, right = tone(0.5, frequency=300), tone(0.5, frequency=700)
    stereo = np.stack([left, right], axis=1)
    waveform = load_audio(wav_bytes(stereo, channels=2))
    expected = (np.round(left * 32767) / 32768 + np.round(right * 32767) / 32768) / 2
    np.testing.assert_allclose(waveform, expected, atol=1.0 / 32768)  # one 16-bit step


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_rates_are_resampled_to_16k(rate):
    waveform = load_audio(wav_bytes(tone(0.5, rate=rate, frequency=1000), rate=rate))
    assert waveform.shape == (8000,)
    # The 1 kHz tone survives: its spectrum peaks at 1 kHz.
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * 16000 / waveform.size - 1000) < 5


@pytest.mark.parametrize("subtype, sampwidth", [("PCM_U8", 1), ("PCM_24", 3), ("FLOAT", None)])
def test_other_wav_depths_go_through_soundfile(subtype, sampwidth):
    x = tone(0.5)
    buffer = io.BytesIO()
    soundfile.write(buffer, x, 16000, format="WAV", subtype=subtype)
    waveform = load_audio(buffer.getvalue())
    tolerance = {1: 1e-2, 3: 1e-6, None: 1e-7}[sampwidth]
    np.testing.assert_allclose(waveform, x, atol=tolerance)


def test_flac_is_read():
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(0.5), 16000, format="FLAC")
    assert load_audio(buffer.getvalue()).shape == (8000,)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty.wav': empty \(0 bytes\)"):
        load_audio(str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AudioDecodeError, match="missing.wav"):
        load_audio(str(tmp_path / "missing.wav"))


def test_header_only_gives_empty_waveform_then_too_short_error():
    waveform = load_audio(wav_bytes(np.zeros(0)))
    assert waveform.shape == (0,)
    with pytest.raises(ValueError, match="too short"):
        tf_pipeline.feature_image(waveform)


def test_truncated_wav_is_a_clear_error():
    with pytest.raises(AudioDecodeError, match="truncated WAV: the header declares 16000 bytes .* only 956"):
        load_audio(wav_bytes(tone(0.5))[:1000])


def test_non_audio_bytes_are_a_clear_error():
    with pytest.raises(AudioDecodeError, match="not readable audio .*Expected WAV, FLAC or OGG"):
        load_audio(b"<html>not audio</html>" * 20)


def test_nan_samples_decode_then_features_refuse_them():
    x = tone(0.5)
    x[100] = np.nan
    buffer = io.BytesIO()
    soundfile.write(buffer, x, 16000, format="WAV", subtype="FLOAT")
    waveform = load_audio(buffer.getvalue())
    assert np.isnan(waveform).any()
    with pytest.raises(ValueError, match="NaN or Inf"):
        tf_pipeline.feature_image(waveform)


def test_in_graph_decoder_rejects_24_bit_with_its_message():
    with pytest.raises(tf.errors.InvalidArgumentError, match="Can only read 16-bit WAV files"):
        decode_to_waveform(wav_bytes(tone(0.1), sampwidth=3))


def test_batch_decode_equals_one_at_a_time():
    items = [
        wav_bytes(tone(0.5, rate=44100), rate=44100),
        wav_bytes(tone(0.3)),
        wav_bytes(np.stack([tone(0.2, rate=8000)] * 2, 1), rate=8000, channels=2),
    ]
    waveforms, lengths = batch_decode_wav(tf.constant(items))
    assert lengths.numpy().tolist() == [8000, 4800, 3200]
    for row, item in enumerate(items):
        single = decode_to_waveform(item).numpy()
        np.testing.assert_array_equal(waveforms[row, : lengths[row]].numpy(), single)
        assert not np.any(waveforms[row, lengths[row]:].numpy())


def test_long_audio_at_a_coprime_rate_resamples_without_overflow():
    # 60 s at 7919 Hz: samples * up exceeds int32; memory stays bounded by chunking.
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 60 * 7919).astype(np.float32)
    ours = tf.function(lambda w, r: resample(w, r, 16000))(x, tf.constant(7919)).numpy()
    reference = scipy.signal.resample_poly(x.astype(np.float64), 16000, 7919)
    assert ours.shape == reference.shape == (960000,)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_wav_with_non_utf8_chunk_ids_is_a_clear_error():
    data = bytearray(wav_bytes(tone(0.1)))
    data[12:16] = b"\xff\xfe\xfd\xfc"  # the fmt chunk id
    with pytest.raises(AudioDecodeError, match="bytes"):
        load_audio(bytes(data))
