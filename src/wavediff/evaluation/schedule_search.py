"""Searching an N-step inference schedule for a trained diffusion vocoder.

WaveGrad found its few-step schedules by grid search scored by a spectral distance; this module
does the same in two stages, from scratch (no schedule is given to start from):

1. **coarse grid**: chains whose noise levels are spread in log-SNR ``lambda = ln(gbar / (1 - gbar))``
   from a least-noisy level (its first variance ``eta_1`` on a grid) to a noisiest level (a fraction
   ``q`` of the noise the model was trained on: ``gbar_N = abar_T ** q``), the levels in between at
   ``lambda_1 + (lambda_N - lambda_1) u^p`` for ``u = (s - 1) / (N - 1)`` and a shape ``p`` on a grid;
2. **refinement**: coordinate search on each step's ``lambda`` (every +-delta move of the best chain
   so far, the best move taken; ``delta`` halved when none helps), keeping the levels ordered and
   inside the range the model was trained on.

Each candidate vocodes a few held-out utterances with fixed seeds (only the schedule differs) and
is scored by the mean log-mel L1 plus the mean multi-resolution STFT distance against the
recordings (both lower is better). Candidates run in parallel, one process per worker.
"""
from __future__ import annotations

import concurrent.futures as futures
import logging
import math
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from wavediff.audio.io import load_audio
from wavediff.checkpoint import load_config_file, resolve_checkpoint
from wavediff.data.manifest import read_entries
from wavediff.diffusion.schedule import linear_schedule
from wavediff.errors import WavediffError
from wavediff.metrics.spectral import log_mel_l1, multi_resolution_stft_distance
from wavediff.models.diffwave.vocoding import reverse_chain
from wavediff.pipelines import Vocoder

log = logging.getLogger(__name__)

FIRST_ETAS = (1e-5, 1e-4, 1e-3, 1e-2)
"""The coarse grid's variance of the least noisy step."""
TOP_FRACTIONS = (1.0, 0.85, 0.7, 0.55)
"""The coarse grid's noisiest level, ``gbar_N = abar_T ** q``: 1 starts from the most noise trained on."""
SHAPES = (0.5, 0.75, 1.0, 1.5, 2.0)
"""The coarse grid's spacing exponents ``p`` of the levels in log-SNR."""


@dataclass(frozen=True)
class Candidate:
    """An N-step schedule and its scores (``None`` before scoring; ``inf`` where it cannot run)."""

    etas: tuple[float, ...]
    log_mel_l1: float = math.inf
    mr_stft: float = math.inf

    @property
    def score(self) -> float:
        """What the search minimises: log-mel L1 + MR-STFT distance."""
        return self.log_mel_l1 + self.mr_stft


@dataclass
class SearchResult:
    """The best schedule found, the schedule the checkpoint runs for N steps without it, and the search's record."""

    steps: int
    best: Candidate
    baseline: Candidate
    baseline_name: str
    stages: list[dict] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict:
        def cand(c: Candidate) -> dict:
            return {**asdict(c), "etas": list(c.etas), "score": c.score}
        return {"steps": self.steps, "etas": list(self.best.etas), "best": cand(self.best),
                "baseline": {"name": self.baseline_name, **cand(self.baseline)}, "stages": self.stages,
                "utterances": self.utterances, "wall_seconds": round(self.wall_seconds, 1)}


def etas_from_levels(lam: Sequence[float]) -> tuple[float, ...]:
    """Variances ``eta_s = 1 - gbar_s / gbar_{s-1}`` of a chain whose log-SNRs ``lam`` fall with ``s``."""
    gbar = [1.0 / (1.0 + math.exp(-x)) for x in lam]
    prev = [1.0] + gbar[:-1]
    return tuple(1.0 - g / p for g, p in zip(gbar, prev))


def levels_from_etas(etas: Sequence[float]) -> list[float]:
    """The inverse of :func:`etas_from_levels`."""
    gbar = np.cumprod([1.0 - e for e in etas])
    return [math.log(g / (1.0 - g)) for g in gbar]


def coarse_grid(steps: int, abar_T: float) -> list[tuple[float, ...]]:
    """The first stage's schedules (see the module); none of them is the paper's."""
    out: list[tuple[float, ...]] = []
    lam_top = [math.log(abar_T ** q / (1.0 - abar_T ** q)) for q in TOP_FRACTIONS]
    for eta1 in FIRST_ETAS:
        lam1 = math.log((1.0 - eta1) / eta1)
        for lt in lam_top:
            if lt >= lam1:
                continue
            shapes = SHAPES if steps > 2 else (1.0,)
            for p in shapes:
                lam = [lam1 + (lt - lam1) * ((s / (steps - 1)) ** p if steps > 1 else 1.0) for s in range(steps)]
                if steps == 1:
                    lam = [lt]
                cand = etas_from_levels(lam)
                if cand not in out:
                    out.append(cand)
    return out


def neighbours(etas: Sequence[float], delta: float, lam_min: float) -> list[tuple[float, ...]]:
    """Every chain one step's log-SNR ``+-delta`` away from ``etas``, its levels still falling and no
    noisier than ``lam_min``."""
    lam = levels_from_etas(etas)
    out = []
    for s in range(len(lam)):
        for sign in (1.0, -1.0):
            moved = list(lam)
            moved[s] += sign * delta
            ordered = all(moved[i] > moved[i + 1] for i in range(len(moved) - 1))
            if ordered and moved[-1] >= lam_min - 1e-9 and moved[0] < 40:
                out.append(etas_from_levels(moved))
    return out


class ScheduleScorer:
    """Vocodes held-out utterances under a schedule and scores them (one per worker process)."""

    def __init__(self, checkpoint: str, paths: Sequence[str], seed: int, precision: str,
                 sampler_overrides: Sequence[str], threads: int) -> None:
        torch.set_num_threads(threads)
        self.vocoder = Vocoder.from_checkpoint(checkpoint, device="cpu", precision=precision)
        self.sampler = self.vocoder.config.sampler.with_overrides(sampler_overrides)
        self.seed = seed
        rate = self.vocoder.sample_rate
        self.audio = [load_audio(Path(p), rate, resample=True) for p in paths]
        self.mels = [self.vocoder.mel(a) for a in self.audio]

    def score(self, etas: Sequence[float]) -> Candidate:
        """The candidate's mean log-mel L1 and MR-STFT distance (``inf`` where the schedule cannot run)."""
        mel_l1, stft = [], []
        for i, (audio, mel) in enumerate(zip(self.audio, self.mels)):
            try:
                wav = self.vocoder.vocode(mel, len(etas), etas=list(etas), sampler=self.sampler,
                                          generator=torch.Generator().manual_seed(self.seed + i)).numpy()
            except WavediffError:
                return Candidate(tuple(etas))
            wav = wav[: audio.shape[0]] / np.float32(self.vocoder.input_gain(audio))
            mel_l1.append(log_mel_l1(audio, wav, self.vocoder.frontend))
            stft.append(multi_resolution_stft_distance(audio, wav))
        return Candidate(tuple(etas), float(np.mean(mel_l1)), float(np.mean(stft)))


_WORKER: ScheduleScorer | None = None


def _init_worker(*args: object) -> None:
    global _WORKER
    _WORKER = ScheduleScorer(*args)  # type: ignore[arg-type]


def _score_in_worker(etas: tuple[float, ...]) -> Candidate:
    assert _WORKER is not None
    return _WORKER.score(etas)


def search_schedule(checkpoint: str, data: str | Path, steps: int, *, utterances: int = 4, workers: int = 2,
                    rounds: int = 6, delta: float = 1.0, seed: int = 0, precision: str = "fp32",
                    sampler: Sequence[str] = (), progress: Callable[[Iterable, str, int], Iterable] | None = None
                    ) -> SearchResult:
    """Search an N-step schedule for ``checkpoint`` (see the module).

    Args:
        data: held-out audio (a folder or manifest); its first ``utterances`` files score every candidate.
        workers: processes scoring candidates in parallel (1: in this process), one thread each.
        rounds: refinement rounds; ``delta``: the first round's log-SNR move (halved when no move helps).
        sampler: ``key=value`` overrides of the checkpoint's sampler (its update rule, consistency step...).
        progress: wraps each stage's candidates, ``progress(iterable, stage name, count)`` (e.g. tqdm).
    """
    if steps < 1 or utterances < 1 or workers < 1 or rounds < 0 or not delta > 0:
        raise WavediffError(f"steps={steps}, utterances={utterances}, workers={workers} must be >= 1, rounds={rounds} "
                            f">= 0 and delta={delta} > 0")
    config = load_config_file(resolve_checkpoint(checkpoint))
    if config.family not in ("diffwave", "wavegrad") or config.model.conditioning != "mel":
        raise WavediffError(f"search-schedule needs a diffusion mel vocoder (diffwave or wavegrad), not a "
                            f"{config.family!r} model conditioned on {config.model.conditioning!r}")
    d = config.diffusion
    abar_T = float(linear_schedule(d.num_steps, d.beta_start, d.beta_end).alphas_cumprod[-1])
    lam_min = math.log(abar_T / (1.0 - abar_T))
    paths = [str(e.path) for e in read_entries(data)[:utterances]]
    if not paths:
        raise WavediffError(f"no audio in {str(data)!r}")
    args = (str(checkpoint), paths, seed, precision, list(sampler), 1)
    t0 = time.perf_counter()
    scored: dict[tuple[float, ...], Candidate] = {}
    if workers == 1:
        local = ScheduleScorer(*args)
        run: Callable[[list[tuple[float, ...]]], Iterable[Candidate]] = lambda c: map(local.score, c)  # noqa: E731
        pool = None
    else:
        pool = futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=args)
        run = lambda c: pool.map(_score_in_worker, c)  # noqa: E731

    def evaluate(cands: list[tuple[float, ...]], stage: str) -> None:
        todo = [c for c in dict.fromkeys(cands) if c not in scored]
        results = run(todo)
        for cand in (progress(results, stage, len(todo)) if progress else results):
            scored[cand.etas] = cand

    try:
        chain = reverse_chain(config, steps)
        baseline_etas = tuple(float(x) for x in chain.etas)
        baseline_name = ("the config's schedule" if d.schedule_for(steps) and steps != d.num_steps
                         else "full chain" if steps == d.num_steps else "strided")
        evaluate([baseline_etas], "baseline")
        grid = coarse_grid(steps, abar_T)
        evaluate(grid, "coarse grid")
        best = min((scored[c] for c in grid), key=lambda c: c.score)
        stages = [{"name": "coarse grid", "candidates": len(grid), "best": list(best.etas), "score": best.score,
                   "seconds": round(time.perf_counter() - t0, 1)}]
        step = delta
        for r in range(rounds):
            moves = neighbours(best.etas, step, lam_min)
            evaluate(moves, f"refine {r + 1}/{rounds} (delta {step:g})")
            found = min((scored[c] for c in moves), key=lambda c: c.score, default=best)
            if found.score < best.score:
                best = found
            else:
                step /= 2
            stages.append({"name": f"refine {r + 1}", "delta": step, "candidates": len(moves),
                           "best": list(best.etas), "score": best.score, "seconds": round(time.perf_counter() - t0, 1)})
    finally:
        if pool is not None:
            pool.shutdown()
    return SearchResult(steps, best, scored[baseline_etas], baseline_name, stages, paths, time.perf_counter() - t0)
