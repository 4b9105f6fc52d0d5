"""Griffin-Lim baseline: mel -> linear magnitude (non-negative least squares) -> phase."""
from __future__ import annotations

import numpy as np
import torch

from wavediff.audio.mel import MelFrontend


def griffin_lim_from_mel(mel: torch.Tensor | np.ndarray, frontend: MelFrontend, n_iter: int = 32,
                         seed: int = 0) -> np.ndarray:
    """Invert a compressed mel ``(n_mels, F)`` of ``frontend`` to audio ``(F * hop,)``.

    The mel compression is undone, the STFT magnitude is recovered with librosa's
    non-negative least squares (``mel_to_stft``), and the phase with ``n_iter`` iterations
    of librosa's fast Griffin-Lim (momentum 0.99, random initial phase from ``seed``).
    """
    import librosa

    c = frontend.config
    mel_t = torch.as_tensor(np.asarray(mel, dtype=np.float32))
    mel_mag = frontend.decompress(mel_t).numpy().astype(np.float64)
    if c.stft_normalized:
        mel_mag = mel_mag * float(frontend.window.square().sum().sqrt())
    magnitude = librosa.feature.inverse.mel_to_stft(
        mel_mag, sr=c.sample_rate, n_fft=c.n_fft, power=1.0, fmin=c.f_min, fmax=c.max_frequency,
        htk=c.mel_scale == "htk", norm="slaney" if c.mel_norm == "slaney" else None,
    )
    frames = mel_t.shape[-1]
    length = frames * c.hop_length
    audio = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=c.hop_length, win_length=c.win_length, n_fft=c.n_fft,
        window="hann", center=True, length=(frames - 1) * c.hop_length,
        random_state=np.random.RandomState(seed), init="random",
    )
    if c.padding == "hifigan":  # hifigan frame k is centred at k*hop + hop/2: delay by half a hop
        audio = np.concatenate([np.zeros(c.hop_length // 2, dtype=audio.dtype), audio])
    audio = np.pad(audio, (0, max(0, length - audio.shape[0])))[:length]
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
