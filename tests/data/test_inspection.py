"""wavediff.data.inspection: each fix of bad training audio is what it says (stereo mixed to mono,
resampled, short clips padded with silence) and each refusal names its kind."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from wavediff.data.inspection import BadAudio, read_training_audio

from helpers import SR, make_bad_corpus


def test_the_fixes_are_what_they_say(tmp_path):
    make_bad_corpus(tmp_path / "bad")
    stereo, check = read_training_audio(tmp_path / "bad" / "stereo.wav", SR)
    both, _ = sf.read(tmp_path / "bad" / "stereo.wav", dtype="float32")
    np.testing.assert_allclose(stereo, both.mean(axis=1), atol=1e-7)
    assert check.fixes == {"stereo"}
    resampled, check = read_training_audio(tmp_path / "bad" / "rate44k.wav", SR)
    assert check.fixes == {"resampled"} and check.num_samples == resampled.shape[0] == SR // 2
    part, _ = read_training_audio(tmp_path / "bad" / "rate44k.wav", SR, start=100, stop=612)
    np.testing.assert_array_equal(part, resampled[100:612])
    short, check = read_training_audio(tmp_path / "bad" / "short.wav", SR, min_samples=1000)
    assert check.fixes == {"short"} and short.shape == (1000,) and not short[441:].any()
    for name, kind in [("nan.wav", "non-finite"), ("empty.wav", "empty"), ("garbage.wav", "unreadable"),
                       ("nowhere.wav", "unreadable")]:
        with pytest.raises(BadAudio) as info:
            read_training_audio(tmp_path / "bad" / name, SR)
        assert info.value.kind == kind
