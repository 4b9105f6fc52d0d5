"""User API: load a checkpoint, run a sampler, return audio.

>>> vocoder = Vocoder.from_checkpoint("runs/base")          # doctest: +SKIP
>>> audio = vocoder.vocode(mel, steps=6, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
>>> digits = Synthesizer.from_checkpoint("runs/sc09-class-cpu")  # doctest: +SKIP
>>> clips = digits.generate(4, labels="seven", seed=0)       # doctest: +SKIP  (4, 16000)
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Self, Sequence

import numpy as np
import torch

from wavediff.audio.io import AUDIO_EXTENSIONS, load_audio, save_audio
from wavediff.audio.loudness import peak_gain
from wavediff.audio.mel import MelFrontend, mel_config_from_preset
from wavediff.checkpoint import check_state_matches, load_config_file, load_weights, resolve_checkpoint
from wavediff.config import MelConfig, RunConfig, SamplerConfig
from wavediff.devices import pick_device
from wavediff.data.labels import label_index
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import SamplingSchedule
from wavediff.errors import WavediffError
from wavediff.inference.planning import DEFAULT_MAX_MEMORY_GB
from wavediff.models.diffwave import DiffWave
from wavediff.models.diffwave.vocoding import reverse_chain
from wavediff.models.family import family_of
from wavediff.precision import GENERATION_PRECISIONS, check_precision, resolve_precision

log = logging.getLogger(__name__)

MEL_SIDECAR_KEY = "wavediff_mel_frontend"


def _load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, RunConfig]:
    ckpt = resolve_checkpoint(path)
    config = load_config_file(ckpt)
    model, parts = family_of(config).build_inference_model(config)
    weights = load_weights(ckpt, parts)
    check_state_matches(model, weights, f"checkpoint {str(ckpt)!r}")
    model.load_state_dict(weights)
    log.info("loaded %s (%s, %s preset)", ckpt, config.family, config.preset)
    return model, config


class _Pipeline:
    """What :class:`Vocoder` and :class:`Synthesizer` share: a model in eval mode on its device and its config."""

    def __init__(self, model: torch.nn.Module, config: RunConfig, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.family = family_of(config)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", **options: Any) -> Self:
        """Load the EMA weights and config of a checkpoint folder or of a run folder's latest."""
        model, config = _load_checkpoint(path)
        return cls(model, config, pick_device(device), **options)

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate


class Vocoder(_Pipeline):
    """A trained mel-conditioned model of any family (:mod:`wavediff.models.family`) with its own
    mel front-end: audio or mels in, waveforms out.

    ``precision``, ``weights``, ``chunk_seconds`` and ``max_memory_gb`` go to the family's
    :meth:`~wavediff.models.family.ModelFamily.vocoding` (DiffWave: the inference engine's
    precision, int8 weights, streaming / one pass / windows, and the memory a pass may take).
    """

    def __init__(self, model: torch.nn.Module, config: RunConfig, device: torch.device | str = "cpu", *,
                 precision: str = "fp32", weights: str = "float", chunk_seconds: float | None | str = "auto",
                 max_memory_gb: float = DEFAULT_MAX_MEMORY_GB) -> None:
        if config.model.conditioning != "mel":
            raise WavediffError(
                f"this checkpoint is not a vocoder (model.conditioning={config.model.conditioning!r})"
            )
        super().__init__(model, config, device)
        self.frontend = MelFrontend(config.mel, device=self.device)
        self.precision = resolve_precision(precision, self.device)
        allowed = self.family.vocoding_precisions
        if precision == "auto" and allowed is not None and self.precision not in allowed:
            self.precision = "fp32"
        self.weights = weights
        self.vocoding = self.family.vocoding(self.model, config, self.device, precision=self.precision,
                                             weights=weights, chunk_seconds=chunk_seconds,
                                             max_memory_gb=max_memory_gb)

    @classmethod
    def pretrained(cls, name: str | None = None, device: str = "auto", **options: Any) -> Self:
        """A vocoder shipped inside the package (``wavediff models`` lists them; default:
        :data:`wavediff.pretrained.DEFAULT_VOCODER`), loaded offline; ``options`` as :meth:`__init__`."""
        from wavediff.pretrained import bundled_model

        return cls.from_checkpoint(bundled_model(name).path, device=device, **options)

    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length

    def input_gain(self, audio: torch.Tensor | np.ndarray) -> float:
        """The factor :meth:`mel` scales ``(L,)`` audio by first: a checkpoint trained with
        ``data.normalize='peak'`` takes the audio to its training peak level; 1 otherwise.
        Audio resynthesised from that mel comes out at the scaled level: divide it by the
        gain to return to the input's (:meth:`vocode_audio` and ``wavediff vocode`` do)."""
        peak = self.config.data.normalization_peak
        return 1.0 if peak is None else peak_gain(audio, peak)

    def mel(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """This checkpoint's mel of ``(L,)`` or ``(B, L)`` audio at its sample rate, each
        utterance scaled by :meth:`input_gain` first."""
        if self.config.data.normalization_peak is None:
            return self.frontend(audio)
        audio_t = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if audio_t.dim() == 2:
            audio_t = torch.stack([row * self.input_gain(row) for row in audio_t])
        else:
            audio_t = audio_t * self.input_gain(audio_t)
        return self.frontend(audio_t)

    def check_mel(self, mel: torch.Tensor, source: str = "mel") -> None:
        """Reject a mel whose band count or value range does not fit this checkpoint's front-end."""
        n_mels = self.config.mel.n_mels
        if mel.dim() != 3 or mel.shape[1] != n_mels:
            raise WavediffError(
                f"{source}: shape {tuple(mel.shape)} does not fit this vocoder, which expects "
                f"(B, {n_mels}, frames) or ({n_mels}, frames) from the {self.config.mel.name!r} front-end"
            )
        if mel.shape[-1] < 1:
            raise WavediffError(f"{source}: the mel has no frames")
        if not bool(torch.isfinite(mel).all()):
            raise WavediffError(f"{source}: the mel holds NaN or Inf values")
        lo, hi = float(mel.min()), float(mel.max())
        if self.config.mel.compression == "db_normalized" and (lo < -1e-3 or hi > 1 + 1e-3):
            raise WavediffError(
                f"{source}: values span [{lo:.2f}, {hi:.2f}] but the {self.config.mel.name!r} front-end of this "
                "checkpoint gives dB-normalised mels in [0, 1] (a natural-log mel, as HiFi-GAN's, is not accepted)"
            )
        floor = float(np.log(self.config.mel.log_floor))
        if self.config.mel.compression == "log" and (lo < floor - 1e-3 or (lo >= 0 and hi <= 1)):
            raise WavediffError(
                f"{source}: values span [{lo:.2f}, {hi:.2f}] but the {self.config.mel.name!r} front-end of this "
                f"checkpoint gives natural-log mels >= ln({self.config.mel.log_floor:g}) = {floor:.2f}"
                + (" (values in [0, 1] look like a dB-normalised diffwave mel)" if lo >= 0 and hi <= 1 else "")
            )

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor | np.ndarray | Sequence[torch.Tensor], steps: int = 6, *,
               etas: Sequence[float] | None = None,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               sampler: SamplerConfig | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Mel ``(n_mels, F)`` -> ``(F * hop,)``; ``(B, n_mels, F)`` -> ``(B, F * hop)``; a list of
        ``(n_mels, F_i)`` mels of different lengths -> a list of ``(F_i * hop,)`` waveforms.

        ``steps=6`` uses the paper's fast schedule, ``steps=T`` the full chain (Algorithm 2).
        ``generator``: one, or one per utterance (then each output does not depend on what
        it is batched with). ``sampler``: how the chain starts and whether it is held to the
        mel (:class:`~wavediff.config.SamplerConfig`; default: the checkpoint's ``sampler``).
        Runs on the family's vocoding (DiffWave: :class:`~wavediff.inference.InferenceEngine`);
        output is clipped to [-1, 1].
        """
        sampler = sampler if sampler is not None else self.config.sampler
        as_list = isinstance(mel, (list, tuple))
        if as_list:
            mels = [torch.as_tensor(np.asarray(m, dtype=np.float32)) if isinstance(m, np.ndarray) else m for m in mel]
            for i, m in enumerate(mels):
                self.check_mel(m.unsqueeze(0), f"mel {i}")
        else:
            if isinstance(mel, np.ndarray):
                mel = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
            squeeze = mel.dim() == 2
            mel = mel.unsqueeze(0) if squeeze else mel
            self.check_mel(mel)
            mels = list(mel)
        gens = list(generator) if isinstance(generator, (list, tuple)) else [generator] * len(mels)
        if len(gens) != len(mels):
            raise WavediffError(f"got {len(gens)} generators for {len(mels)} mels; give one or one each")
        out = self.vocoding.vocode(mels, steps=steps, etas=etas, generators=gens, sampler=sampler)
        for i, a in enumerate(out):
            bad = int((~torch.isfinite(a)).sum())
            if bad:   # a chain that diverged (an undertrained model): say so, and keep the audio usable
                log.warning("utterance %d: %d of %d samples are not finite (the reverse chain diverged); set to 0",
                            i, bad, a.numel())
                a.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        out = [a.clamp_(-1.0, 1.0) for a in out]
        if as_list:
            return out
        return out[0] if squeeze else torch.stack(out)

    def vocode_audio(self, audio: torch.Tensor | np.ndarray, steps: int = 6, *,
                     generator: torch.Generator | None = None, sampler: SamplerConfig | None = None) -> torch.Tensor:
        """Resynthesise ``(L,)`` audio from its own mel; returns ``(L,)``."""
        audio_t = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        out = self.vocode(self.mel(audio_t), steps, generator=generator, sampler=sampler)
        return out[: audio_t.shape[-1]] / self.input_gain(audio_t)


LabelSpec = str | int | Sequence[str | int] | None


class Synthesizer(_Pipeline):
    """A trained class-conditional or unconditional model: clips from labels or from nothing.
    DiffWave runs its reverse chain here; other families (WaveNet) generate through their
    :meth:`~wavediff.models.family.ModelFamily.generate_clips`, where steps and guidance do not apply.

    ``generate(n, labels=..., seed=S)`` gives ``(n, clip_samples)`` audio in [-1, 1]. Clip
    ``i`` draws all its noise from its own generator seeded ``S + i``, so it does not depend
    on ``batch_size`` or on the other clips.

    Classifier-free guidance (Ho & Salimans 2021; not in the DiffWave paper) for models
    trained with ``model.label_dropout`` > 0: ``eps = eps(x, none) + w (eps(x, label) -
    eps(x, none))``. ``w = 1`` is plain conditional sampling, ``w = 0`` unconditional
    sampling from the same network, ``w > 1`` trades diversity for label fidelity.
    """

    def __init__(self, model: DiffWave, config: RunConfig, device: torch.device | str = "cpu", *,
                 precision: str = "fp32") -> None:
        if config.model.conditioning == "mel":
            raise WavediffError("this checkpoint is a mel-conditioned vocoder; use Vocoder (wavediff vocode)")
        if not family_of(config).generates_clips and config.family != "diffwave":
            raise WavediffError(f"a {config.family!r} model does not generate clips from labels or from nothing")
        check_precision(precision, GENERATION_PRECISIONS)
        if config.family != "diffwave" and precision not in ("fp32", "auto"):
            raise WavediffError(f"a {config.family!r} model generates in fp32, not precision={precision!r}")
        super().__init__(model, config, device)
        self.precision = (resolve_precision(precision, self.device, GENERATION_PRECISIONS)
                          if config.family == "diffwave" else "fp32")

    @property
    def clip_samples(self) -> int:
        return self.config.clip_samples

    def chain(self, steps: int = 6, etas: Sequence[float] | None = None) -> SamplingSchedule:
        """The reverse chain ``generate`` runs (see :func:`~wavediff.models.diffwave.vocoding.reverse_chain`)."""
        return reverse_chain(self.config, steps, etas)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The labels a class-conditional model knows (empty for an unconditional one)."""
        m = self.config.model
        if m.conditioning != "class":
            return ()
        return m.class_names or tuple(str(i) for i in range(m.num_classes))

    @property
    def output_gain(self) -> float:
        """The factor clips are scaled by after sampling: a model trained on peak-normalised
        clips (``data.normalize='peak'``) samples at ``data.peak_level`` and returns its clips
        at the training data's median peak as recorded (``data.source_peak``); 1 otherwise."""
        return self.config.data.output_gain

    @property
    def supports_guidance(self) -> bool:
        return self.config.model.null_label is not None

    def label_indices(self, labels: LabelSpec, n: int) -> list[int] | None:
        """``n`` class indices: one label (name or index) for all, one per clip, or ``None``
        for the classes in turn (0, 1, ..., K-1, 0, ...). ``None`` for an unconditional model."""
        names = self.class_names
        if not names:
            if labels is not None:
                raise WavediffError("this model is unconditional; it takes no labels")
            return None
        if labels is None:
            return [i % len(names) for i in range(n)]
        if isinstance(labels, (str, int)):
            return [label_index(labels, names)] * n
        out = [label_index(v, names) for v in labels]
        if len(out) != n:
            raise WavediffError(f"{len(out)} labels for n={n} clips; give one label or one per clip")
        return out

    def _denoiser(self, labels: torch.Tensor | None, guidance_scale: float) -> Any:
        model = self.model
        if labels is None:
            return lambda x, t: model(x, t)
        if guidance_scale == 1.0:
            cond = model.condition(labels=labels)
            return lambda x, t: model(x, t, cond=cond)
        null = torch.full_like(labels, self.config.model.null_label)
        cond = model.condition(labels=torch.cat([labels, null]))

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), cond=cond).chunk(2)
            return eps_u + guidance_scale * (eps_c - eps_u)
        return guided

    @torch.inference_mode()
    def generate(self, n: int, labels: LabelSpec = None, *, steps: int = 6, etas: Sequence[float] | None = None,
                 seed: int = 0, guidance_scale: float = 1.0, batch_size: int = 16,
                 temperature: float | None = None, progress: bool = False,
                 sampler: SamplerConfig | None = None) -> torch.Tensor:
        """``n`` clips ``(n, clip_samples)``; see the class docstring for seeds and guidance.
        ``batch_size`` is the rows per network call (with guidance, half as many clips).
        ``temperature``: an autoregressive model's draws (default: the checkpoint's
        ``sampler.temperature``; DiffWave ignores it). ``sampler``: the diffusion chain's update
        rule (``sampler.method``: ancestral, ddim, dpm-solver; default: the checkpoint's).

        ``steps=6`` uses the fast schedule (Appendix B), ``steps=T`` the full chain
        (Algorithm 2, as the paper's SC09 results), other values an evenly strided chain."""
        if n < 1 or batch_size < 1:
            raise WavediffError(f"n={n} and batch_size={batch_size} must be >= 1")
        if guidance_scale != 1.0 and not self.supports_guidance:
            raise WavediffError(
                f"guidance_scale={guidance_scale} needs a class model trained with model.label_dropout > 0 "
                f"(this one: conditioning={self.config.model.conditioning!r}, "
                f"label_dropout={self.config.model.label_dropout})"
            )
        if guidance_scale < 0:
            raise WavediffError(f"guidance_scale={guidance_scale} must be >= 0")
        indices = self.label_indices(labels, n)
        if self.config.family != "diffwave":
            temperature = self.config.sampler.temperature if temperature is None else temperature
            if temperature < 0:
                raise WavediffError(f"temperature={temperature} must be >= 0")
            clips = self.family.generate_clips(self.model, self.config, indices, [seed + i for i in range(n)],
                                               temperature=temperature, batch_size=batch_size, progress=progress)
            return (clips.float() * self.output_gain).clamp(-1.0, 1.0).cpu()
        chain = self.chain(steps, etas)
        solver = (sampler or self.config.sampler).solver
        out = torch.empty(n, self.clip_samples)
        # guidance runs both branches in one call: half the clips per call keep its rows at batch_size
        # (on 2 CPU cores, calls of 32 one-second clips took 1.8x longer per clip than calls of 16)
        per_call = max(1, batch_size // 2) if guidance_scale != 1.0 else batch_size
        starts = range(0, n, per_call)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="generate", unit="batch", leave=False)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        for b0 in starts:
            rows = list(range(b0, min(n, b0 + per_call)))
            gens = [torch.Generator().manual_seed(seed + i) for i in rows]
            lab = None if indices is None else torch.tensor([indices[i] for i in rows], device=self.device)
            with autocast:
                x = sample(self._denoiser(lab, guidance_scale), (len(rows), self.clip_samples), chain,
                           generator=gens, device=self.device, solver=solver)
            out[b0:b0 + len(rows)] = (x.float() * self.output_gain).clamp(-1.0, 1.0).cpu()
        return out


def generate_files(generator: Synthesizer, out_dir: str | Path, n: int, labels: LabelSpec = None, *,
                   steps: int = 6, etas: Sequence[float] | None = None, seed: int = 0,
                   guidance_scale: float = 1.0, batch_size: int = 16, temperature: float | None = None,
                   progress: bool = True, sampler: SamplerConfig | None = None) -> list[Path]:
    """Write ``n`` generated clips as ``<label>_<i>.wav`` (``sample_<i>.wav`` unconditional) and
    ``samples.tsv`` (``path``, and ``label`` for a class model) in ``out_dir``."""
    indices = generator.label_indices(labels, n)
    audio = generator.generate(n, indices, steps=steps, etas=etas, seed=seed,
                               guidance_scale=guidance_scale, batch_size=batch_size, temperature=temperature,
                               progress=progress, sampler=sampler)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = generator.class_names
    written, rows = [], []
    for i in range(n):
        label = None if indices is None else names[indices[i]]
        path = out / f"{label or 'sample'}_{i:04d}.wav"
        save_audio(path, audio[i].numpy(), generator.sample_rate)
        written.append(path)
        rows.append(path.name if label is None else f"{path.name}\t{label}")
    header = "path" if indices is None else "path\tlabel"
    (out / "samples.tsv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return written


# ---------------------------------------------------------------- files
def _expand_inputs(inputs: Sequence[str | Path], suffixes: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes and f.is_file())
            if not found:
                raise WavediffError(f"no input files ({', '.join(suffixes)}) under {str(p)!r}")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in suffixes:
                raise WavediffError(f"input {str(p)!r} has an unsupported type; allowed: {', '.join(suffixes)}")
            files.append(p)
        else:
            raise WavediffError(f"input not found: {str(p)!r}")
    return files


def read_mel_file(path: Path, vocoder: Vocoder) -> torch.Tensor:
    """A ``(n_mels, F)`` mel from ``.npy``, checked against a ``.json`` sidecar if present."""
    try:
        mel = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WavediffError(f"cannot read mel file {str(path)!r}: {exc}") from None
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    n_mels = vocoder.config.mel.n_mels
    if mel.ndim != 2 or mel.shape[0] != n_mels:
        raise WavediffError(
            f"mel file {str(path)!r} has shape {tuple(mel.shape)}; this vocoder's {vocoder.config.mel.name!r} "
            f"front-end gives ({n_mels}, frames)"
        )
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text()).get(MEL_SIDECAR_KEY)
        except (OSError, json.JSONDecodeError):
            meta = None
        if isinstance(meta, dict):
            mine = dataclasses.asdict(vocoder.config.mel)
            for key, value in mine.items():
                if key != "name" and key in meta and meta[key] != value:
                    raise WavediffError(
                        f"mel file {str(path)!r} was made with {key}={meta[key]!r} ({meta.get('name')!r} front-end) "
                        f"but this checkpoint's {vocoder.config.mel.name!r} front-end has {key}={value!r}"
                    )
    tensor = torch.from_numpy(mel.astype(np.float32))
    vocoder.check_mel(tensor.unsqueeze(0), f"mel file {str(path)!r}")
    return tensor


def vocode_files(vocoder: Vocoder, inputs: Sequence[str | Path], out_dir: str | Path, *, steps: int = 6,
                 etas: Sequence[float] | None = None, seed: int = 0, batch_size: int = 8,
                 resample: bool = False, sampler: SamplerConfig | None = None) -> list[Path]:
    """Vocode audio files (via their mel) and ``.npy`` mels to ``out_dir/<name>.wav``.

    Files are batched ``batch_size`` at a time, grouped by length; each keeps its own
    length (the engine's padding rows mask the others). The noise of the k-th input (in
    the order given) comes from its own generator seeded ``seed + k``, so a file's output
    does not depend on the batch size. Audio at another sample rate than the checkpoint's
    is refused unless ``resample`` is true. ``sampler``: see :meth:`Vocoder.vocode`.
    """
    if batch_size < 1:
        raise WavediffError(f"--batch-size={batch_size} must be >= 1")
    files = _expand_inputs(inputs, (*AUDIO_EXTENSIONS, ".npy"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items: list[tuple[Path, torch.Tensor, int, float]] = []   # (file, mel, samples, input gain)
    for f in files:
        if f.suffix.lower() == ".npy":
            mel = read_mel_file(f, vocoder)
            items.append((f, mel, mel.shape[-1] * vocoder.hop_length, 1.0))
        else:
            audio = load_audio(f, vocoder.sample_rate, resample=resample)
            items.append((f, vocoder.mel(audio), audio.shape[0], vocoder.input_gain(audio)))
    order = sorted(range(len(items)), key=lambda i: items[i][1].shape[-1])
    written: list[Path] = []
    from tqdm import tqdm

    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="vocode", unit="batch", disable=len(batches) < 2):
        generators = [torch.Generator().manual_seed(seed + i) for i in batch]
        audio = vocoder.vocode([items[i][1] for i in batch], steps, etas=etas, generator=generators,
                               sampler=sampler)
        for row, i in enumerate(batch):
            path, _, length, gain = items[i]
            target = out / f"{path.stem}.wav"
            save_audio(target, (audio[row][:length] / gain).numpy(), vocoder.sample_rate)
            written.append(target)
    return written


def write_mels(inputs: Sequence[str | Path], out_dir: str | Path, *, checkpoint: str | None = None,
               frontend: str | None = None) -> list[Path]:
    """Write ``<name>.npy`` mels and ``<name>.json`` sidecars describing the front-end."""
    if checkpoint is not None:
        mel_config: MelConfig = load_config_file(resolve_checkpoint(checkpoint)).mel
    elif frontend is not None:
        mel_config = mel_config_from_preset(frontend)
    else:
        raise WavediffError("give a checkpoint or a front-end preset")
    fe = MelFrontend(mel_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in _expand_inputs(inputs, AUDIO_EXTENSIONS):
        mel = fe(load_audio(f, mel_config.sample_rate)).numpy()
        np.save(out / f"{f.stem}.npy", mel.astype(np.float32), allow_pickle=False)
        (out / f"{f.stem}.json").write_text(json.dumps({MEL_SIDECAR_KEY: dataclasses.asdict(mel_config)}, indent=2))
        written.append(out / f"{f.stem}.npy")
    return written
