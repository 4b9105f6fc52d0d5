"""A speech-like corpus made from nothing: a source-filter synthesiser.

Each utterance is a sequence of syllables. Voiced parts are a band-limited glottal
source (harmonics of a time-varying F0 with a -6 dB/octave tilt, jitter, shimmer and
aspiration noise) sent through a cascade of four time-varying formant resonators that
glide between vowel targets; consonants are bursts of band-pass noise (fricatives) or a
short closure and burst (plosives). Pauses separate words. It is not speech, but it has
speech's structure (harmonics, formants, transients, silence) so a vocoder can be trained
and compared on it without downloading a corpus.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from wavediff.audio.io import save_audio

# (F1, F2, F3, F4) in Hz for a few vowels of an adult male voice (Peterson & Barney-like).
VOWELS = {
    "a": (730, 1090, 2440, 3400), "e": (530, 1840, 2480, 3500), "i": (270, 2290, 3010, 3700),
    "o": (570, 840, 2410, 3300), "u": (300, 870, 2240, 3300), "ae": (660, 1720, 2410, 3400),
    "er": (490, 1350, 1690, 3300),
}
BANDWIDTHS = (80.0, 100.0, 140.0, 200.0)
BLOCK = 64  # samples per filter-coefficient update


def _resonator_coefficients(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    b = np.array([a.sum()])  # unit gain at DC
    return b, a


def _formant_filter(source: np.ndarray, formants: np.ndarray, sr: int, scale: float) -> np.ndarray:
    """Cascade of time-varying resonators; ``formants (L, 4)`` in Hz, updated per block."""
    out = source.copy()
    for k in range(formants.shape[1]):
        zi = np.zeros(2)
        y = np.empty_like(out)
        for start in range(0, out.shape[0], BLOCK):
            stop = min(start + BLOCK, out.shape[0])
            f = min(formants[start, k] * scale, sr / 2 * 0.9)
            b, a = _resonator_coefficients(f, BANDWIDTHS[k], sr)
            y[start:stop], zi = lfilter(b, a, out[start:stop], zi=zi)
        out = y
    return out


def synthesize_utterance(sample_rate: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """One speech-like utterance ``(round(duration * sample_rate),)`` float32, about -20 dBFS RMS."""
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    base_f0 = rng.uniform(85, 240)
    tract_scale = rng.uniform(0.9, 1.25) if base_f0 > 160 else rng.uniform(0.85, 1.05)
    # F0: declination, a few intonation bumps, vibrato-like drift and jitter
    f0 = base_f0 * (1.1 - 0.2 * t / max(duration, 1e-3))
    for _ in range(rng.integers(1, 4)):
        centre, width = rng.uniform(0, duration), rng.uniform(0.1, 0.4)
        f0 = f0 * (1 + rng.uniform(-0.15, 0.25) * np.exp(-0.5 * ((t - centre) / width) ** 2))
    f0 = f0 * (1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1)))
    # plan syllables: (start, stop, vowel, consonant kind)
    voicing = np.zeros(n)
    frication = np.zeros(n)
    formants = np.zeros((n, 4))
    names = list(VOWELS)
    pos = int(rng.uniform(0.05, 0.15) * sample_rate)
    prev = np.array(VOWELS[names[rng.integers(len(names))]], dtype=float)
    while pos < n - int(0.15 * sample_rate):
        kind = rng.choice(["none", "fricative", "plosive"], p=[0.35, 0.35, 0.3])
        if kind == "fricative":
            length = int(rng.uniform(0.05, 0.12) * sample_rate)
            env = np.hanning(length)
            frication[pos:pos + length] += env[: max(0, min(length, n - pos))]
            pos += length
        elif kind == "plosive":
            pos += int(rng.uniform(0.03, 0.06) * sample_rate)  # closure
            length = int(0.015 * sample_rate)
            frication[pos:pos + length] += np.exp(-np.arange(length) / (0.004 * sample_rate))[: max(0, min(length, n - pos))]
            pos += length
        vlen = int(rng.uniform(0.1, 0.28) * sample_rate)
        stop = min(n, pos + vlen)
        target = np.array(VOWELS[names[rng.integers(len(names))]], dtype=float)
        ramp = np.clip(np.linspace(0, 3, stop - pos), 0, 1)[:, None]
        formants[pos:stop] = prev * (1 - ramp) + target * ramp
        env = np.sin(np.linspace(0, np.pi, stop - pos)) ** 0.6
        voicing[pos:stop] = env * rng.uniform(0.6, 1.0)
        prev = target
        pos = stop + (int(rng.uniform(0.08, 0.25) * sample_rate) if rng.random() < 0.3 else 0)
    # hold formants through gaps so the filter does not jump
    last = np.array(VOWELS["er"], dtype=float)
    for i in range(n):
        if formants[i, 0] == 0:
            formants[i] = last
        else:
            last = formants[i]
    # band-limited glottal source
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    source = np.zeros(n)
    for k in range(1, int(sample_rate / 2 / f0.min())):
        audible = (k * f0) < sample_rate / 2 * 0.95
        source += np.where(audible, np.sin(k * phase) / k, 0.0)
    shimmer = 1 + 0.05 * rng.standard_normal(n // 256 + 2).repeat(256)[:n]
    aspiration = 0.05 * rng.standard_normal(n)
    voiced = _formant_filter((source * shimmer + aspiration) * voicing, formants, sample_rate, tract_scale)
    centre = rng.uniform(2500, 6000)
    sos = butter(4, [centre * 0.6, min(centre * 1.5, sample_rate / 2 * 0.95)], btype="band", fs=sample_rate,
                 output="sos")
    noise = sosfilt(sos, rng.standard_normal(n)) * frication
    audio = voiced / (np.sqrt(np.mean(voiced ** 2)) + 1e-9) + 0.6 * noise / (np.sqrt(np.mean(noise ** 2)) + 1e-9)
    audio = audio + 1e-3 * rng.standard_normal(n)  # recording noise floor
    audio = audio * (0.1 / (np.sqrt(np.mean(audio ** 2)) + 1e-9))
    peak = np.abs(audio).max()
    if peak > 0.95:
        audio *= 0.95 / peak
    return audio.astype(np.float32)


def make_corpus(out_dir: str | Path, num_train: int = 60, num_test: int = 4, sample_rate: int = 22050,
                duration: tuple[float, float] = (1.5, 3.0), seed: int = 0) -> tuple[Path, Path]:
    """Write ``train/`` and ``test/`` folders of synthetic utterances; returns both paths."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    folders = []
    for split, count in (("train", num_train), ("test", num_test)):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            audio = synthesize_utterance(sample_rate, float(rng.uniform(*duration)), rng)
            save_audio(folder / f"{split}_{i:04d}.wav", audio, sample_rate)
        folders.append(folder)
    return folders[0], folders[1]
