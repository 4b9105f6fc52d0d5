"""Griffin-Lim: mel -> linear magnitude (non-negative least squares) -> phase.

Two users: the evaluation's baseline (:func:`griffin_lim_from_mel`, librosa's fast
Griffin-Lim, unchanged so that its scores stay comparable across releases) and the
samplers' mel-consistency steps (:class:`MagnitudeProjection`, in torch): a Griffin-Lim
start for the reverse chain and GLA-Grad's projection of the network's estimate of the
clean signal onto signals whose STFT magnitude is the one the mel implies.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from wavediff.audio.mel import MelFrontend
from wavediff.errors import WavediffError

FAST_GL_MOMENTUM = 0.99   # librosa's default for the fast Griffin-Lim (Perraudin et al. 2013)
FISTA_ITERATIONS = 100    # the sampler's non-negative least squares (magnitude_from_mel(method='fista'))


def _mel_magnitudes(mel: torch.Tensor | np.ndarray, frontend: MelFrontend) -> torch.Tensor:
    """Mel magnitudes ``(n_mels, F)`` float64 in unnormalised STFT units, from a compressed mel."""
    mel_t = torch.as_tensor(np.asarray(mel, dtype=np.float32))
    mags = frontend.decompress(mel_t.cpu()).double()
    if frontend.config.stft_normalized:
        mags = mags * float(frontend.window.square().sum().sqrt())
    return mags


def magnitude_from_mel(mel: torch.Tensor | np.ndarray, frontend: MelFrontend, method: str = "lbfgs",
                       iterations: int = FISTA_ITERATIONS) -> np.ndarray:
    """The linear STFT magnitude ``(n_fft // 2 + 1, F)`` (float64, unnormalised STFT units) whose
    mel is closest to a compressed mel ``(n_mels, F)`` of ``frontend``: non-negative least squares
    ``min ||W a - m||`` with ``a >= 0`` per frame, ``W`` the front-end's filterbank.

    ``method='lbfgs'``: librosa's ``mel_to_stft`` (L-BFGS-B from the clipped pseudo-inverse; the
    Griffin-Lim baseline's, unchanged). ``'fista'``: ``iterations`` steps of accelerated projected
    gradient (Beck and Teboulle's FISTA, step ``1 / ||W||^2``) from the same start, all frames
    at once in torch: about 10x faster, and its residual is below librosa's after 100 (tested).
    """
    if method not in ("lbfgs", "fista"):
        raise WavediffError(f"method={method!r} is not allowed; choose one of ['lbfgs', 'fista']")
    c = frontend.config
    mags = _mel_magnitudes(mel, frontend)
    if method == "lbfgs":
        import librosa

        return librosa.feature.inverse.mel_to_stft(
            mags.numpy(), sr=c.sample_rate, n_fft=c.n_fft, power=1.0, fmin=c.f_min, fmax=c.max_frequency,
            htk=c.mel_scale == "htk", norm="slaney" if c.mel_norm == "slaney" else None,
        )
    bank = frontend.filterbank.detach().cpu().double()
    lipschitz = float(torch.linalg.matrix_norm(bank, 2)) ** 2
    x = (torch.linalg.pinv(bank) @ mags).clamp_min(0.0)
    y, t = x.clone(), 1.0
    for _ in range(iterations):
        x_next = (y - bank.T @ (bank @ y - mags) / lipschitz).clamp_min(0.0)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = x_next + ((t - 1.0) / t_next) * (x_next - x)
        x, t = x_next, t_next
    return x.numpy()


def frame_offset(frontend: MelFrontend) -> int:
    """Where the front-end's frame 0 is centred, in samples: 0 for ``padding='center'``, half a
    hop for ``padding='hifigan'`` (frame k spans the samples around ``k * hop + hop / 2``)."""
    c = frontend.config
    return 0 if c.padding == "center" else c.hop_length // 2


def griffin_lim_from_mel(mel: torch.Tensor | np.ndarray, frontend: MelFrontend, n_iter: int = 32,
                         seed: int = 0) -> np.ndarray:
    """Invert a compressed mel ``(n_mels, F)`` of ``frontend`` to audio ``(F * hop,)``.

    The STFT magnitude comes from :func:`magnitude_from_mel`, the phase from ``n_iter``
    iterations of librosa's fast Griffin-Lim (momentum 0.99, random initial phase from ``seed``).
    """
    import librosa

    c = frontend.config
    magnitude = magnitude_from_mel(mel, frontend)
    frames = magnitude.shape[-1]
    length = frames * c.hop_length
    audio = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=c.hop_length, win_length=c.win_length, n_fft=c.n_fft,
        window="hann", center=True, length=(frames - 1) * c.hop_length,
        random_state=np.random.RandomState(seed), init="random",
    )
    offset = frame_offset(frontend)
    if offset:
        audio = np.concatenate([np.zeros(offset, dtype=audio.dtype), audio])
    audio = np.pad(audio, (0, max(0, length - audio.shape[0])))[:length]
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


class MagnitudeProjection:
    """Griffin-Lim's two projections for one utterance, in torch: ``x -> ISTFT(A e^{i angle STFT(x)})``.

    ``A`` is a target magnitude ``(n_fft // 2 + 1, F)`` on the front-end's frames (frame k
    centred at ``offset + k * hop``). A signal ``(L,)`` is projected on ``x[offset:]``: its
    STFT (Hann window, ``center=True``) has its magnitude replaced by ``A`` on the first
    ``F`` frames (frames past them keep their own) and is inverted to the same length; the
    ``offset`` samples before frame 0's centre are left as they are. A signal whose STFT
    magnitude already is ``A`` comes back unchanged (up to float rounding).

    Args:
        magnitude: ``(n_fft // 2 + 1, F)`` non-negative, in unnormalised STFT units.
        n_fft, hop_length, win_length: the STFT's geometry (the front-end's).
        offset: samples before frame 0's centre (:func:`frame_offset`).
    """

    def __init__(self, magnitude: torch.Tensor | np.ndarray, n_fft: int, hop_length: int, win_length: int,
                 offset: int = 0) -> None:
        mag = torch.as_tensor(np.asarray(magnitude), dtype=torch.float32)
        if mag.dim() != 2 or mag.shape[0] != n_fft // 2 + 1:
            raise WavediffError(f"magnitude has shape {tuple(mag.shape)}; expected ({n_fft // 2 + 1}, frames)")
        if not bool((mag >= 0).all()):
            raise WavediffError("magnitude has negative values")
        self.magnitude = mag
        self.n_fft, self.hop_length, self.win_length, self.offset = n_fft, hop_length, win_length, offset
        self.window = torch.hann_window(win_length, periodic=True)

    @classmethod
    def from_mel(cls, mel: torch.Tensor | np.ndarray, frontend: MelFrontend) -> "MagnitudeProjection":
        """The projection onto the magnitude a compressed mel ``(n_mels, F)`` implies
        (:func:`magnitude_from_mel` with ``method='fista'``)."""
        c = frontend.config
        return cls(magnitude_from_mel(mel, frontend, method="fista"), c.n_fft, c.hop_length, c.win_length, frame_offset(frontend))

    @property
    def frames(self) -> int:
        return int(self.magnitude.shape[-1])

    @property
    def num_samples(self) -> int:
        """The length of the vocoder's output for this mel: ``F * hop``."""
        return self.frames * self.hop_length

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                           normalized=False, onesided=True, length=length)

    def _replace_magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        n = min(self.frames, spec.shape[-1])
        head = spec[:, :n]
        mag = head.abs()
        phase = torch.where(mag > 0, head / mag.clamp_min(1e-30), torch.ones_like(head))
        out = spec.clone()
        out[:, :n] = self.magnitude[:, :n] * phase
        return out

    def __call__(self, x: torch.Tensor, iterations: int = 1, momentum: float = FAST_GL_MOMENTUM) -> torch.Tensor:
        """``iterations`` Griffin-Lim iterations from ``x``'s own phase; returns a new ``(L,)`` fp32
        tensor. With more than one, the fast Griffin-Lim's ``momentum`` is used (0: plain GL).
        Iterations count as ``librosa.griffinlim``'s ``n_iter`` does: each is one projection and
        re-analysis, and the result is the inverse of the last estimate with ``A`` put back, so
        ``n`` iterations replace the magnitude ``n + 1`` times."""
        if iterations < 1:
            raise WavediffError(f"iterations={iterations} must be >= 1")
        if x.dim() != 1 or x.shape[0] <= self.offset + self.n_fft // 2:
            raise WavediffError(f"x has shape {tuple(x.shape)}; expected (L,) with L > {self.offset + self.n_fft // 2}")
        x = x.detach().to("cpu", torch.float32)
        region = x[self.offset:]
        length = region.shape[0]
        spec = self._stft(region)
        previous = None
        for _ in range(iterations):
            projected = self._stft(self._istft(self._replace_magnitude(spec), length))
            if previous is None or momentum == 0:
                spec = projected
            else:
                spec = projected + momentum * (projected - previous)   # c_n = t_n + a (t_n - t_{n-1})
            previous = projected
        out = x.clone()
        out[self.offset:] = self._istft(self._replace_magnitude(spec), length)
        return out

    def from_noise(self, generator: torch.Generator | None, iterations: int = 32) -> torch.Tensor:
        """Griffin-Lim from a random phase (uniform, drawn from ``generator``): ``(F * hop,)`` fp32."""
        if iterations < 1:
            raise WavediffError(f"iterations={iterations} must be >= 1")
        length = self.num_samples - self.offset
        frames = 1 + length // self.hop_length
        angles = torch.rand((self.n_fft // 2 + 1, frames), generator=generator, dtype=torch.float32)
        spec = torch.polar(torch.ones_like(angles), 2 * torch.pi * angles)
        start = torch.zeros(self.num_samples)
        start[self.offset:] = self._istft(self._replace_magnitude(spec), length)
        return self(start, iterations - 1) if iterations > 1 else start
