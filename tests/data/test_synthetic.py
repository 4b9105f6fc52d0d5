"""wavediff.data.synthetic: the demo's speech-like corpus: the folders and lengths asked for,
reproducible from its seed, voiced (a pitch in the speech range) and below full scale."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from wavediff.data.synthetic import make_corpus, synthesize_utterance


def test_the_corpus_has_the_files_rates_and_lengths_asked_for(tmp_path):
    train, test = make_corpus(tmp_path / "a", num_train=3, num_test=2, sample_rate=16000, duration=(0.4, 0.6))
    assert (train, test) == (tmp_path / "a" / "train", tmp_path / "a" / "test")
    files = sorted(train.glob("*.wav")) + sorted(test.glob("*.wav"))
    assert [f.name for f in files] == ["train_0000.wav", "train_0001.wav", "train_0002.wav", "test_0000.wav",
                                       "test_0001.wav"]
    for f in files:
        info = sf.info(f)
        assert info.samplerate == 16000 and 0.4 * 16000 - 1 <= info.frames <= 0.6 * 16000 + 1


def test_the_same_seed_gives_the_same_corpus_and_another_seed_another(tmp_path):
    def corpus(name, seed):
        train, _ = make_corpus(tmp_path / name, num_train=2, num_test=1, sample_rate=8000, duration=(0.3, 0.4),
                               seed=seed)
        return [sf.read(f)[0] for f in sorted(train.glob("*.wav"))]

    a, b, c = corpus("a", 0), corpus("b", 0), corpus("c", 1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0][:2000], c[0][:2000])


def test_an_utterance_is_voiced_with_a_speech_pitch_and_below_full_scale():
    sr = 16000
    utterance = synthesize_utterance(sr, 1.5, np.random.default_rng(3))
    assert utterance.dtype == np.float32 and utterance.shape == (24000,) and np.isfinite(utterance).all()
    x = utterance.astype(np.float64)
    assert 0.05 < np.abs(x).max() <= 0.95 + 1e-6
    # the loudest 40 ms frame is periodic: its autocorrelation peaks at a lag of 2.5-12.5 ms (80-400 Hz)
    frame = 640
    energy = [float((x[i:i + frame] ** 2).sum()) for i in range(0, x.size - frame, frame)]
    seg = x[int(np.argmax(energy)) * frame:][:frame]
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[frame - 1:]
    lags = np.arange(sr // 400, sr // 80)
    assert ac[lags].max() > 0.4 * ac[0]
