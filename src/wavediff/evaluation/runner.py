"""Resynthesise a test set from its mels with every system and score it against the recordings.

Systems: each checkpoint at each step count, and Griffin-Lim at each iteration count on
the same mels (one Griffin-Lim per distinct mel front-end among the checkpoints). Every
utterance is loaded at the checkpoints' sample rate, its mel computed by each system's
front-end, resynthesised, written under ``audio/<system>/`` and scored with
:data:`METRICS`. The noise of DiffWave's sampler is seeded per utterance, the same for
every checkpoint and step count, so differences between systems are not noise draws.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from wavediff.audio.filters import check_cutoff, low_pass
from wavediff.audio.griffinlim import griffin_lim_from_mel
from wavediff.audio.io import audio_info, load_audio, save_audio
from wavediff.audio.mel import MelFrontend
from wavediff.config import SOLVER_METHODS, SamplerConfig
from wavediff.data.manifest import read_entries
from wavediff.devices import cpu_name
from wavediff.errors import WavediffError
from wavediff.evaluation.stats import Summary, summarise
from wavediff.metrics.spectral import log_mel_l1, multi_resolution_stft_distance
from wavediff.metrics.speech import MCD_ORDER, SpeechScorer
from wavediff.pipelines import Vocoder
from wavediff.checkpoint import resolve_checkpoint

log = logging.getLogger(__name__)

SamplerVariant = tuple[str, list[str]]   # (label in the tables, key=value overrides of the checkpoint's sampler)


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    better: Literal["lower", "higher"]
    definition: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("log_mel_l1", "log-mel L1", "lower",
               "mean |ln mel - ln mel^| (magnitudes floored at 1e-5) in the system's own mel front-end"),
    MetricInfo("mr_stft", "MR-STFT", "lower",
               "Parallel WaveGAN multi-resolution STFT distance: spectral convergence + mean |ln|S| - ln|S^||, "
               "averaged over (n_fft, hop, win) = (1024, 120, 600), (2048, 240, 1200), (512, 50, 240)"),
    MetricInfo("mcd", "MCD (dB)", "lower",
               f"mel-cepstral distortion over c1..c{MCD_ORDER} (c0 excluded), all-pass warped log-amplitude "
               "cepstrum (alpha fitted to the sample rate, 0.455 at 22.05 kHz), 25 ms Hann frames every 5 ms, "
               "all frames, no DTW"),
    MetricInfo("pesq_wb", "PESQ-WB", "higher", "wide-band PESQ (P.862.2, `pesq` package) at 16 kHz"),
    MetricInfo("stoi", "STOI", "higher", "STOI (`pystoi`, resampled to 10 kHz internally)"),
    MetricInfo("f0_rmse_cents", "F0 RMSE (cents)", "lower",
               "Praat autocorrelation F0 (75-600 Hz, 10 ms), RMSE of 1200 log2(f/f_ref) on frames voiced in both"),
    MetricInfo("vuv_f1", "V/UV F1", "higher", "F1 of voiced/unvoiced decisions of the same tracker, voiced positive"),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


@dataclass(frozen=True)
class SystemSpec:
    """One way of turning a mel back into audio."""

    name: str
    slug: str
    kind: Literal["model", "griffin-lim"]   # a checkpoint of any family, or the baseline
    vocoder_index: int
    steps: int | None = None
    gl_iters: int | None = None
    checkpoint: str | None = None
    sampler: SamplerConfig | None = None
    variant: str = ""   # the sampler variant's label ("": the checkpoint's own sampler)
    chain: str = ""     # the reverse chain the steps select, in words (Vocoding.describe_chain)


@dataclass
class SystemResult:
    spec: SystemSpec
    metrics: dict[str, Summary]
    rtf: float
    synthesis_seconds: float


@dataclass
class UtteranceResult:
    id: str
    source: str
    duration_s: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # slug -> metric -> value
    audio: dict[str, str] = field(default_factory=dict)  # slug (and "recording") -> path relative to the report
    spectrogram: dict[str, str] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    meta: dict
    systems: list[SystemResult]
    utterances: list[UtteranceResult]

    def to_json(self) -> str:
        return json.dumps({
            "meta": self.meta,
            "metrics": [dataclasses.asdict(m) for m in METRICS],
            "systems": [{**dataclasses.asdict(s.spec), "rtf": s.rtf, "synthesis_seconds": s.synthesis_seconds,
                         "metrics": {k: v.to_dict() for k, v in s.metrics.items()}} for s in self.systems],
            "utterances": [{**dataclasses.asdict(u), "scores": {s: {k: (v if np.isfinite(v) else None)
                                                                    for k, v in d.items()}
                                                                for s, d in u.scores.items()}}
                           for u in self.utterances],
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "EvaluationReport":
        """The report :meth:`to_json` wrote (a metric left out as ``null`` reads back as NaN)."""
        raw = json.loads(text)

        def summary(d: dict) -> Summary:
            return Summary(*(math.nan if d[k] is None else float(d[k]) for k in ("mean", "ci95")), int(d["n"]),
                           int(d.get("skipped", 0)))

        spec_fields = {f.name for f in dataclasses.fields(SystemSpec)}
        systems = []
        for d in raw["systems"]:
            spec = {k: v for k, v in d.items() if k in spec_fields}
            if spec.get("sampler") is not None:
                spec["sampler"] = SamplerConfig(**spec["sampler"])
            systems.append(SystemResult(SystemSpec(**spec), {k: summary(v) for k, v in d["metrics"].items()},
                                        float(d["rtf"]), float(d["synthesis_seconds"])))
        utterances = [UtteranceResult(u["id"], u["source"], u["duration_s"],
                                      {s: {k: (math.nan if v is None else v) for k, v in m.items()}
                                       for s, m in u["scores"].items()}, u["audio"], u["spectrogram"])
                      for u in raw["utterances"]]
        return cls(raw["meta"], systems, utterances)


def read_report(path: str | Path) -> EvaluationReport:
    """An evaluation written by ``wavediff evaluate``: its folder or its ``results.json``."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise WavediffError(f"{path}: no evaluation report there (a folder written by `wavediff evaluate`, "
                            "or its results.json)")
    try:
        return EvaluationReport.from_json(file.read_text())
    except (KeyError, TypeError, ValueError) as exc:
        raise WavediffError(f"{file}: not an evaluation report ({exc!r})") from None


def merge_reports(reports: Sequence[EvaluationReport]) -> EvaluationReport:
    """One report of the systems of several evaluations of the same utterances (e.g. some step
    counts now, 50 steps later), for one plot or table: a system named in more than one (the
    Griffin-Lim baseline) is kept once, from the first. The audio and spectrogram paths of each
    utterance are dropped (they are relative to each report's own folder). Reports of different
    utterances are refused."""
    if not reports:
        raise WavediffError("merge_reports needs at least one report")
    ids = [u.id for u in reports[0].utterances]
    for r in reports[1:]:
        other = [u.id for u in r.utterances]
        if other != ids:
            raise WavediffError(f"reports of different utterances cannot merge: {r.meta.get('data')} has "
                                f"{len(other)} ({other[:3]}...), {reports[0].meta.get('data')} {len(ids)} "
                                f"({ids[:3]}...)")
    systems: dict[str, SystemResult] = {}
    for r in reports:
        for s in r.systems:
            systems.setdefault(s.spec.name, s)
    slugs = {s.spec.slug for s in systems.values()}
    utterances = []
    for i, u in enumerate(reports[0].utterances):
        scores: dict[str, dict[str, float]] = {}
        for r in reports:
            for slug, m in r.utterances[i].scores.items():
                if slug in slugs:
                    scores.setdefault(slug, m)
        utterances.append(UtteranceResult(u.id, u.source, u.duration_s, scores))
    meta = {**reports[0].meta, "merged_from": [r.meta.get("command", "") for r in reports]}
    return EvaluationReport(meta, list(systems.values()), utterances)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "system"


def _checkpoint_names(paths: Sequence[str]) -> list[str]:
    names = []
    for p in paths:
        path = Path(p).resolve()
        base = path.name if not path.name.startswith("step_") else f"{path.parent.parent.name}@{path.name[5:].lstrip('0')}"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def build_systems(checkpoints: Sequence[str], vocoders: Sequence[Vocoder], steps: Sequence[int],
                  gl_iters: Sequence[int], labels: Sequence[str] | None = None,
                  samplers: Sequence[SamplerVariant] = ()) -> list[SystemSpec]:
    """Griffin-Lim baselines first (per distinct front-end), then each checkpoint × step count ×
    sampler variant (``(label, overrides of the checkpoint's sampler)``; none: the checkpoint's own);
    a one-pass vocoder (a GAN) once, whatever the steps and samplers."""
    systems: list[SystemSpec] = []
    frontends: list[tuple[int, str]] = []
    for i, v in enumerate(vocoders):
        key = json.dumps(dataclasses.asdict(v.config.mel), sort_keys=True)
        if key not in [k for _, k in frontends]:
            frontends.append((i, key))
    for i, _ in frontends:
        for n_iter in gl_iters:
            suffix = f" ({vocoders[i].config.mel.name} mel)" if len(frontends) > 1 else ""
            name = f"Griffin-Lim, {n_iter} it{suffix}"
            systems.append(SystemSpec(name, _slug(f"griffin-lim-{n_iter}{suffix}"), "griffin-lim", i,
                                      gl_iters=n_iter))
    for i, (ckpt, name) in enumerate(zip(checkpoints, labels or _checkpoint_names(checkpoints))):
        if not vocoders[i].vocoding.iterative:
            systems.append(SystemSpec(name, _slug(name), "model", i, checkpoint=str(ckpt)))
            continue
        for s in steps:
            for label, overrides in samplers or [("", [])]:
                sampler = vocoders[i].config.sampler.with_overrides(overrides)
                title = f"{name}, {s} steps" + (f", {label}" if label else "")
                systems.append(SystemSpec(title, _slug(f"{name}-{s}steps" + (f"-{label}" if label else "")), "model", i,
                                          steps=s, checkpoint=str(ckpt), sampler=sampler, variant=label,
                                          chain=vocoders[i].vocoding.describe_chain(s)))
    return systems


def parse_sampler_variant(text: str) -> SamplerVariant:
    """``LABEL:key=value,key=value`` (or ``LABEL`` alone: the checkpoint's own sampler) -> ``(LABEL, [...])``.
    A LABEL that names an update rule (``ancestral``, ``ddim``, ``dpm-solver``) also sets ``method``.

    >>> parse_sampler_variant("gl-start:start=griffin-lim,start_steps=2")
    ('gl-start', ['start=griffin-lim', 'start_steps=2'])
    >>> parse_sampler_variant("ddim:ddim_eta=0.5")
    ('ddim', ['method=ddim', 'ddim_eta=0.5'])
    """
    label, _, items = text.partition(":")
    label = label.strip()
    if not label:
        raise WavediffError(f"sampler variant {text!r} needs a label: LABEL or LABEL:key=value,...")
    overrides = [item.strip() for item in items.split(",") if item.strip()]
    if label in SOLVER_METHODS:
        overrides.insert(0, f"method={label}")
    SamplerConfig().with_overrides(overrides)   # refuse a bad key or value before any work is done
    return label, overrides


def _checkpoint_meta(path: str, vocoder: Vocoder, name: str) -> dict:
    ckpt = resolve_checkpoint(path)
    step = int(ckpt.name[5:]) if ckpt.name.startswith("step_") and ckpt.name[5:].isdigit() else None
    return {"name": name, "path": str(path), "checkpoint": str(ckpt), "step": step, "family": vocoder.config.family,
            "preset": vocoder.config.preset, "precision": vocoder.precision,
            "mel_frontend": vocoder.config.mel.name, "sample_rate": vocoder.sample_rate,
            "diffusion_steps_T": vocoder.config.diffusion.num_steps,
            "parameters": sum(p.numel() for p in vocoder.model.parameters())}


def _log_mel_db(audio: np.ndarray, frontend: MelFrontend) -> np.ndarray:
    """Log-mel magnitudes in dB ``(n_mels, F)`` of ``(L,)`` audio (floor -100 dB)."""
    with torch.no_grad():
        mel = frontend.mel_magnitude(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0))[0]
    return 20 * mel.clamp(min=1e-5).log10().numpy()


def _save_spectrogram_png(db: np.ndarray, path: Path, top_db: float) -> None:
    """Image of ``db`` (low bands at the bottom), colour range [top_db - 80, top_db]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, db, cmap="magma", origin="lower", vmin=top_db - 80, vmax=top_db)


def evaluate(checkpoints: Sequence[str], data: str | Path, out: str | Path, *, steps: Sequence[int] = (6, 50),
             gl_iters: Sequence[int] = (32, 100), seed: int = 0, limit: int | None = None, device: str = "auto",
             command: str | None = None, labels: Sequence[str] | None = None,
             progress: Callable | None = None, precision: str = "fp32",
             samplers: Sequence[SamplerVariant] = (), score_max_hz: float | None = None) -> EvaluationReport:
    """Run every system on every utterance of ``data``; write audio, spectrograms and ``results.json``.

    ``labels`` name the checkpoints in tables (default: their run folders' names, made
    unique). ``samplers``: variants of each checkpoint's sampler to compare (:func:`parse_sampler_variant`;
    empty: each checkpoint's own). ``score_max_hz``: score the recording and every system's audio
    low-passed at that frequency (:func:`wavediff.audio.filters.low_pass`), so that systems whose mels
    stop at different frequencies are compared on the band they all model; the written audio stays
    full band. ``progress`` wraps the utterance iterable (e.g. ``tqdm``). Returns the report; the
    Markdown table, plots and listening page are written by :func:`wavediff.evaluation.report.write_report`.
    """
    _check_request(checkpoints, steps, gl_iters, labels, limit, samplers)
    vocoders, sample_rate = _load_vocoders(checkpoints, steps, device, precision)
    if score_max_hz is not None:
        check_cutoff(score_max_hz, sample_rate)
    entries = read_entries(data)[:limit]
    if not entries:
        raise WavediffError(f"no audio in {str(data)!r}")
    names = list(labels) if labels else _checkpoint_names(checkpoints)
    systems = build_systems(checkpoints, vocoders, steps, gl_iters, names, samplers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    time_spent = {s.slug: 0.0 for s in systems}
    utterances: list[UtteranceResult] = []
    resampled = 0
    ids: set[str] = set()
    iterable = progress(list(enumerate(entries))) if progress else enumerate(entries)
    for index, entry in iterable:
        uid = _slug(entry.path.stem)
        while uid in ids:
            uid += "_"
        ids.add(uid)
        if audio_info(entry.path)[1] != sample_rate:
            resampled += 1
        audio = load_audio(entry.path, sample_rate, resample=True)
        utterances.append(_evaluate_utterance(UtteranceResult(uid, str(entry.path), audio.shape[0] / sample_rate),
                                              audio, systems, vocoders, out, seed + index, seed, time_spent,
                                              score_max_hz))
    if resampled:
        log.info("%d of %d recordings were resampled to %d Hz", resampled, len(entries), sample_rate)
    total_seconds = sum(u.duration_s for u in utterances)
    results = [SystemResult(spec, {k: summarise(u.scores[spec.slug][k] for u in utterances) for k in METRIC_KEYS},
                            time_spent[spec.slug] / total_seconds, time_spent[spec.slug]) for spec in systems]
    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "data": str(data),
        "utterances": len(utterances),
        "audio_seconds": round(total_seconds, 3),
        "sample_rate": sample_rate,
        "resampled_recordings": resampled,
        "seed": seed,
        "score_max_hz": score_max_hz,
        "device": str(vocoders[0].device),
        "precision": vocoders[0].precision,
        "machine": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "checkpoints": [_checkpoint_meta(c, v, n) for c, v, n in zip(checkpoints, vocoders, names)],
        "confidence_interval": "95% Student-t confidence interval over utterances, t(0.975, n-1) * sd / sqrt(n)",
    }
    report = EvaluationReport(meta, results, utterances)
    (out / "results.json").write_text(report.to_json())
    return report


def _check_request(checkpoints: Sequence[str], steps: Sequence[int], gl_iters: Sequence[int],
                   labels: Sequence[str] | None, limit: int | None, samplers: Sequence[SamplerVariant]) -> None:
    """Refuse an evaluation that cannot run, before any work is done."""
    if not checkpoints:
        raise WavediffError("give at least one --checkpoint")
    if any(s < 1 for s in steps) or any(n < 1 for n in gl_iters):
        raise WavediffError(f"--steps {list(steps)} and --gl-iters {list(gl_iters)} must be >= 1")
    if labels is not None and (len(labels) != len(checkpoints) or len(set(labels)) != len(labels)):
        raise WavediffError(f"labels {list(labels)} must be {len(checkpoints)} distinct names, one per checkpoint")
    if limit is not None and limit < 1:
        raise WavediffError(f"--limit={limit} must be >= 1")
    if len({label for label, _ in samplers}) != len(samplers):
        raise WavediffError(f"sampler variants {[label for label, _ in samplers]} need distinct labels")


def _load_vocoders(checkpoints: Sequence[str], steps: Sequence[int], device: str,
                   precision: str) -> tuple[list[Vocoder], int]:
    """The checkpoints' vocoders and their common sample rate; each must run every step count."""
    vocoders = [Vocoder.from_checkpoint(c, device=device, precision=precision) for c in checkpoints]
    rates = {v.sample_rate for v in vocoders}
    if len(rates) > 1:
        raise WavediffError(
            "the checkpoints have different sample rates "
            + ", ".join(f"{c}: {v.sample_rate} Hz" for c, v in zip(checkpoints, vocoders))
            + "; evaluate them separately"
        )
    for v in vocoders:
        for s in steps:
            v.vocoding.check_steps(s)  # refuse a step count the checkpoint cannot run before any work is done
    return vocoders, rates.pop()


def _evaluate_utterance(utt: UtteranceResult, audio: np.ndarray, systems: Sequence[SystemSpec],
                        vocoders: Sequence[Vocoder], out: Path, noise_seed: int, gl_seed: int,
                        time_spent: dict[str, float], score_max_hz: float | None = None) -> UtteranceResult:
    """Every system's resynthesis of one recording ``audio (L,)``: written, drawn and scored into
    ``utt`` (both sides low-passed at ``score_max_hz`` when given); each system's synthesis time is
    added to ``time_spent``."""
    sample_rate = vocoders[0].sample_rate
    view = vocoders[0].frontend
    recording_db = _log_mel_db(audio, view)
    top_db = float(recording_db.max())
    _write_output(utt, "recording", audio, sample_rate, recording_db, top_db, out)

    def scored(x: np.ndarray) -> np.ndarray:
        return x if score_max_hz is None else low_pass(x, sample_rate, score_max_hz)

    reference = scored(audio)
    scorer = SpeechScorer(reference, sample_rate)
    mels: dict[int, torch.Tensor] = {}
    for spec in systems:
        vocoder = vocoders[spec.vocoder_index]
        if spec.vocoder_index not in mels:
            mels[spec.vocoder_index] = vocoder.mel(audio)
        mel = mels[spec.vocoder_index]
        t0 = time.perf_counter()
        if spec.kind == "griffin-lim":
            wav = griffin_lim_from_mel(mel, vocoder.frontend, n_iter=spec.gl_iters, seed=gl_seed)
        else:
            generator = torch.Generator().manual_seed(noise_seed)
            steps = spec.steps if spec.steps is not None else 1    # a one-pass vocoder takes no steps
            wav = vocoder.vocode(mel, steps, generator=generator, sampler=spec.sampler).numpy()
        time_spent[spec.slug] += time.perf_counter() - t0
        # a vocoder trained on peak-normalised audio took the mel of the scaled recording
        wav = np.asarray(wav, dtype=np.float32)[: audio.shape[0]] / np.float32(vocoder.input_gain(audio))
        if wav.shape[0] < audio.shape[0]:
            wav = np.pad(wav, (0, audio.shape[0] - wav.shape[0]))
        estimate = scored(wav)
        scores = {"log_mel_l1": log_mel_l1(reference, estimate, vocoder.frontend),
                  "mr_stft": multi_resolution_stft_distance(reference, estimate)}
        scores.update(scorer.score(estimate))
        utt.scores[spec.slug] = {k: float(scores[k]) for k in METRIC_KEYS}
        _write_output(utt, spec.slug, wav, sample_rate, _log_mel_db(wav, view), top_db, out)
    return utt


def _write_output(utt: UtteranceResult, slug: str, wav: np.ndarray, sample_rate: int, db: np.ndarray,
                  top_db: float, out: Path) -> None:
    """``audio/<slug>/<id>.wav`` and ``spectrograms/<slug>/<id>.png`` (dB from ``top_db`` down), noted in ``utt``."""
    rel = Path("audio") / slug / f"{utt.id}.wav"
    save_audio(out / rel, wav, sample_rate)
    utt.audio[slug] = rel.as_posix()
    rel_png = Path("spectrograms") / slug / f"{utt.id}.png"
    _save_spectrogram_png(db, out / rel_png, top_db)
    utt.spectrogram[slug] = rel_png.as_posix()
