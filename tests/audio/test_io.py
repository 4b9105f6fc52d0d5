"""wavediff.audio.io: reading (mixing to mono, resampling), named errors for bad files, writing."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from wavediff.audio.io import load_audio, save_audio
from wavediff.errors import WavediffError


def test_stereo_is_mixed_to_mono(tmp_path):
    left = np.full(1000, 0.5, dtype=np.float32)
    right = np.full(1000, -0.1, dtype=np.float32)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), 22050)
    audio = load_audio(tmp_path / "s.flac", 22050)
    assert audio.shape == (1000,)
    np.testing.assert_allclose(audio, 0.2, atol=1e-4)  # 16-bit FLAC quantisation


def test_resampling_keeps_a_tone(tmp_path):
    sr_in, sr_out, f = 44100, 22050, 440.0
    t = np.arange(sr_in) / sr_in
    sf.write(tmp_path / "t.wav", 0.5 * np.sin(2 * np.pi * f * t), sr_in, subtype="FLOAT")
    audio = load_audio(tmp_path / "t.wav", sr_out)
    assert abs(audio.shape[0] - sr_out) <= 1
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0])))
    peak_hz = np.argmax(spectrum) * sr_out / audio.shape[0]
    assert abs(peak_hz - f) < 2.0
    with pytest.raises(WavediffError, match="44100 Hz; expected 22050 Hz"):
        load_audio(tmp_path / "t.wav", sr_out, resample=False)


def test_bad_files_give_named_errors(tmp_path):
    with pytest.raises(WavediffError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(WavediffError, match="cannot read audio file"):
        load_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(WavediffError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype=np.float32), 22050, subtype="FLOAT")
    with pytest.raises(WavediffError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_save_clips_and_round_trips(tmp_path):
    x = np.array([0.0, 0.5, -0.25, 2.0, -3.0], dtype=np.float32)
    save_audio(tmp_path / "o.wav", x, 16000)
    y, sr = sf.read(tmp_path / "o.wav", dtype="float32")
    assert sr == 16000
    np.testing.assert_allclose(y, [0.0, 0.5, -0.25, 1.0, -1.0], atol=1 / 32767)
