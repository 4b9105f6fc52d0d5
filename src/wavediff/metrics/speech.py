"""Speech-quality metrics of a synthesised waveform against its reference recording.

- :func:`pesq_wb`: wide-band PESQ (ITU-T P.862.2) from the ``pesq`` package, audio
  resampled to 16 kHz; MOS-LQO from about 1.04 to 4.64, higher is better.
- :func:`stoi`: short-time objective intelligibility (Taal et al. 2011) from ``pystoi``,
  which resamples to 10 kHz itself; 0..1, higher is better.
- :func:`mel_cepstral_distortion`: MCD in dB over mel-cepstra of order 24 (c1..c24; c0,
  the frame energy, left out) from an all-pass frequency warping of the log-amplitude
  STFT, α chosen for the sample rate as SPTK does; no DTW by default, since a vocoder's
  output is sample-aligned with its reference.
- :func:`f0_track` / :class:`SpeechScorer`: F0 from Praat's autocorrelation pitch
  tracker (``praat-parselmouth``), then F0 RMSE in cents on frames voiced in both and the
  F1 score of voiced/unvoiced decisions (voiced = positive class).

All of them run offline. Inputs are mono float arrays ``(L,)`` in [-1, 1]; pairs are cut
to the shorter length.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from wavediff.audio.io import resample_audio
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

PESQ_SAMPLE_RATE = 16000
MCD_ORDER = 24
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral Euclidean distance
F0_FLOOR_HZ = 75.0   # Praat's defaults for speech
F0_CEILING_HZ = 600.0
F0_TIME_STEP_S = 0.01


def _require(module: str, package: str):  # noqa: ANN202 - returns a module
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WavediffError(
            f"this metric needs the {package!r} package; install the evaluation extras: pip install 'wavediff[eval]'"
        ) from None


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    n = min(ref.shape[0], est.shape[0])
    if n == 0:
        raise WavediffError("cannot score an empty signal")
    return ref[:n], est[:n]


# ---------------------------------------------------------------- PESQ and STOI
def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (MOS-LQO) of ``estimate`` against ``reference``; NaN when PESQ finds no speech."""
    ref, est = _pair(reference, estimate)
    return _pesq_at_16k(_to_16k(ref, sample_rate), _to_16k(est, sample_rate))


def _to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == PESQ_SAMPLE_RATE:
        return audio
    return resample_audio(audio.astype(np.float32), sample_rate, PESQ_SAMPLE_RATE).astype(np.float64)


def _pesq_at_16k(ref: np.ndarray, est: np.ndarray) -> float:
    pesq = _require("pesq", "pesq")
    n = min(ref.shape[0], est.shape[0])
    ref, est = ref[:n], est[:n]
    if not np.any(ref) or not np.any(est):
        log.warning("PESQ cannot score a silent signal; scored as NaN")
        return float("nan")
    try:
        return float(pesq.pesq(PESQ_SAMPLE_RATE, ref, est, "wb"))
    except Exception as exc:  # the pesq package raises its own error types (no utterance, too short)
        log.warning("PESQ could not score this pair (%s): %s", type(exc).__name__, exc)
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, extended: bool = False) -> float:
    """STOI (or extended STOI) of ``estimate`` against ``reference``, in [0, 1] (ESTOI may dip below 0)."""
    pystoi = _require("pystoi", "pystoi")
    ref, est = _pair(reference, estimate)
    return float(pystoi.stoi(ref, est, sample_rate, extended=extended))


# ---------------------------------------------------------------- mel-cepstral distortion
def all_pass_alpha(sample_rate: int) -> float:
    """Frequency-warping constant α whose all-pass warp best fits the mel scale at ``sample_rate``.

    Least-squares fit (grid step 0.001) of the warped frequency to Fant's mel scale
    ``log2(1 + f / 1000)``, the criterion behind SPTK's table (0.42 at 16 kHz, 0.455 at
    22.05 kHz, 0.554 at 48 kHz).
    """
    if sample_rate <= 0:
        raise WavediffError(f"sample_rate={sample_rate} must be > 0")
    freqs = np.linspace(0.0, sample_rate / 2, 512)
    omega = 2 * np.pi * freqs / sample_rate
    target = np.log2(1 + freqs / 1000.0) / np.log2(1 + sample_rate / 2000.0) * np.pi
    alphas = np.arange(0.0, 0.99, 0.001)
    errors = [float(np.sum((warp_frequency(omega, a) - target) ** 2)) for a in alphas]
    return float(round(alphas[int(np.argmin(errors))], 3))


def warp_frequency(omega: np.ndarray, alpha: float) -> np.ndarray:
    """Phase response of the first-order all-pass ``(z^-1 - α) / (1 - α z^-1)``: ω -> ω̃ in [0, π]."""
    return omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))


def mel_cepstrum(audio: np.ndarray, sample_rate: int, order: int = MCD_ORDER, alpha: float | None = None,
                 frame_s: float = 0.025, hop_s: float = 0.005, floor: float = 1e-5) -> np.ndarray:
    """Mel-cepstra ``(frames, order + 1)`` of ``(L,)`` audio.

    Per Hann-windowed frame: the log amplitude spectrum ``ln max(|X(ω)|, floor)`` is
    resampled on a uniform grid of the warped frequency ω̃ = :func:`warp_frequency` (ω, α)
    and its real cepstrum taken, so that ``ln|X| ≈ c0 + 2 Σ_m c_m cos(m ω̃)``.
    """
    import librosa

    if order < 1:
        raise WavediffError(f"order={order} must be >= 1")
    alpha = all_pass_alpha(sample_rate) if alpha is None else alpha
    win = max(16, int(round(frame_s * sample_rate)))
    hop = max(1, int(round(hop_s * sample_rate)))
    n_fft = 1 << (win - 1).bit_length()
    spec = np.abs(librosa.stft(np.asarray(audio, dtype=np.float64), n_fft=n_fft, hop_length=hop, win_length=win,
                               window="hann", center=True))
    log_amp = np.log(np.maximum(spec, floor))  # (n_fft/2 + 1, frames)
    return warped_cepstrum(log_amp.T, order, alpha)


def warped_cepstrum(log_amplitude: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """Mel-cepstra ``(frames, order + 1)`` of log-amplitude spectra ``(frames, K + 1)`` on bins ω_k = πk/K.

    Each spectrum is linearly interpolated at ω = warp(ω̃_j, -α) for a uniform grid ω̃_j
    (the inverse all-pass warp), and ``c = irfft(.)[: order + 1]``, which solves
    ``ln|X| = c0 + 2 Σ_{m=1}^{K} c_m cos(m ω̃)`` on the grid.
    """
    log_amplitude = np.atleast_2d(log_amplitude)
    bins_count = log_amplitude.shape[-1]
    n_fft = 2 * (bins_count - 1)
    if order > bins_count - 1:
        raise WavediffError(f"order={order} is too high for spectra of {bins_count} bins")
    bins = np.linspace(0.0, np.pi, bins_count)
    source = warp_frequency(bins, -alpha)  # the un-warped frequency of each uniform warped bin
    warped = np.stack([np.interp(source, bins, frame) for frame in log_amplitude])
    return np.fft.irfft(warped, n=n_fft, axis=-1)[:, : order + 1]


def mel_cepstral_distortion(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                            order: int = MCD_ORDER, use_dtw: bool = False) -> float:
    """Mean MCD in dB, ``10/ln10 · sqrt(2 Σ_{d=1}^{order} (c_d - ĉ_d)^2)`` over frames.

    Without DTW the frames are compared one to one (signals cut to the shorter length);
    with ``use_dtw`` they are aligned by dynamic time warping on the same distance.
    """
    if use_dtw:
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    else:
        ref, est = _pair(reference, estimate)
    a = mel_cepstrum(ref, sample_rate, order)[:, 1:]
    b = mel_cepstrum(est, sample_rate, order)[:, 1:]
    if use_dtw:
        import librosa

        _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
        a, b = a[path[:, 0]], b[path[:, 1]]
    return _mcd_of_frames(a, b)


def _mcd_of_frames(a: np.ndarray, b: np.ndarray) -> float:
    """Mean MCD in dB of paired cepstra ``(frames, order)`` without c0."""
    return float(MCD_CONSTANT * np.mean(np.sqrt(np.sum((a - b) ** 2, axis=-1))))


# ---------------------------------------------------------------- F0
def f0_track(audio: np.ndarray, sample_rate: int, time_step: float = F0_TIME_STEP_S,
             floor_hz: float = F0_FLOOR_HZ, ceiling_hz: float = F0_CEILING_HZ) -> np.ndarray:
    """F0 in Hz per ``time_step`` frame ``(frames,)``, 0 where unvoiced (Praat autocorrelation method).

    Frames are centred at ``time_step * (k + 0.5)`` from the start, so two signals of the
    same length give frame-aligned tracks.
    """
    parselmouth = _require("parselmouth", "praat-parselmouth")
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    duration = x.shape[0] / sample_rate
    frames = int(duration // time_step)
    if frames < 1:
        return np.zeros(0)
    sound = parselmouth.Sound(x, sampling_frequency=float(sample_rate))
    pitch = sound.to_pitch_ac(time_step=time_step, pitch_floor=floor_hz, pitch_ceiling=ceiling_hz)
    times = time_step * (np.arange(frames) + 0.5)
    values = np.array([pitch.get_value_at_time(t) for t in times], dtype=np.float64)
    return np.nan_to_num(values, nan=0.0)


def f0_rmse_cents(reference_f0: np.ndarray, estimate_f0: np.ndarray) -> float:
    """RMS of ``1200 log2(f_est / f_ref)`` over frames voiced in both; NaN if there are none."""
    n = min(reference_f0.shape[0], estimate_f0.shape[0])
    ref, est = reference_f0[:n], estimate_f0[:n]
    both = (ref > 0) & (est > 0)
    if not both.any():
        return float("nan")
    cents = 1200.0 * np.log2(est[both] / ref[both])
    return float(np.sqrt(np.mean(cents**2)))


def vuv_f1(reference_f0: np.ndarray, estimate_f0: np.ndarray) -> float:
    """F1 of the voiced/unvoiced decisions (voiced = positive); NaN if the reference has no voiced frame."""
    n = min(reference_f0.shape[0], estimate_f0.shape[0])
    ref, est = reference_f0[:n] > 0, estimate_f0[:n] > 0
    if not ref.any():
        return float("nan")
    tp = float(np.sum(ref & est))
    fp = float(np.sum(~ref & est))
    fn = float(np.sum(ref & ~est))
    return 2 * tp / (2 * tp + fp + fn)


# ---------------------------------------------------------------- all of them against one reference
@dataclass
class SpeechScorer:
    """Scores estimates against one reference, computing the reference's features once.

    >>> scorer = SpeechScorer(recording, 22050)          # doctest: +SKIP
    >>> scorer.score(vocoded)                             # doctest: +SKIP
    {'mcd': 4.1, 'pesq_wb': 3.2, 'stoi': 0.95, 'f0_rmse_cents': 21.0, 'vuv_f1': 0.97}
    """

    reference: np.ndarray
    sample_rate: int
    use_dtw: bool = False

    def __post_init__(self) -> None:
        self.reference = np.asarray(self.reference, dtype=np.float64).reshape(-1)
        self._ref_f0 = f0_track(self.reference, self.sample_rate)
        self._ref_16k = _to_16k(self.reference, self.sample_rate)
        self._ref_mcep = None if self.use_dtw else mel_cepstrum(self.reference, self.sample_rate)[:, 1:]

    def score(self, estimate: np.ndarray) -> dict[str, float]:
        est = np.asarray(estimate, dtype=np.float64).reshape(-1)
        if est.shape[0] < self.reference.shape[0]:  # keep reference features valid: pad the estimate
            est = np.pad(est, (0, self.reference.shape[0] - est.shape[0]))
        est = est[: self.reference.shape[0]]
        if self._ref_mcep is None:
            mcd = mel_cepstral_distortion(self.reference, est, self.sample_rate, use_dtw=True)
        else:
            b = mel_cepstrum(est, self.sample_rate)[:, 1:]
            mcd = _mcd_of_frames(self._ref_mcep, b)
        est_f0 = f0_track(est, self.sample_rate)
        return {
            "mcd": mcd,
            "pesq_wb": _pesq_at_16k(self._ref_16k, _to_16k(est, self.sample_rate)),
            "stoi": stoi(self.reference, est, self.sample_rate),
            "f0_rmse_cents": f0_rmse_cents(self._ref_f0, est_f0),
            "vuv_f1": vuv_f1(self._ref_f0, est_f0),
        }
