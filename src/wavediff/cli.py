"""The ``wavediff`` command line: thin subcommands over the library.

Errors caused by the user's input print as one line (``wavediff: error: ...``) with
exit status 2 and no traceback; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from wavediff.config import PRESETS, TRAINING_IMPLEMENTATIONS
from wavediff.errors import WavediffError
from wavediff.precision import ENGINE_PRECISIONS, GENERATION_PRECISIONS, TRAINING_PRECISIONS, WEIGHT_FORMATS

log = logging.getLogger("wavediff")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_inference(p: argparse.ArgumentParser, default_precision: str) -> None:
    p.add_argument("--precision", choices=ENGINE_PRECISIONS, default=default_precision,
                   help=f"inference precision; int8 = dilated convs and residual/skip projections in int8, "
                        f"the rest bf16 (x86 CPU); "
                        f"auto = bf16 where the hardware has it (AVX512-BF16/AMX CPU, "
                        f"CUDA), else fp32; fp32 is the reference (default {default_precision})")
    p.add_argument("--weights", choices=WEIGHT_FORMATS, default="float",
                   help="int8: round the residual stack's weights to per-channel int8 (default float)")
    p.add_argument("--chunk-seconds", default="auto",
                   help="'stream': every step and layer advance together through the audio (exact, bounded "
                        "memory, fastest on a CPU; a HiFi-GAN: windows of 256 frames); 'none': one pass; "
                        "seconds: windows of that length with an exact overlap; 'auto': stream on a CPU, "
                        "elsewhere one pass unless it needs more than --max-memory-gb, then windows "
                        "(default auto)")
    p.add_argument("--max-memory-gb", type=float, default=4.0,
                   help="memory a one-pass batch may take before 'auto' chunks it on a GPU (default 4)")


def _chunk_seconds(raw: str) -> float | None | str:
    if raw in ("auto", "none", "stream"):
        return None if raw == "none" else raw
    try:
        value = float(raw)
    except ValueError:
        raise WavediffError(f"--chunk-seconds={raw!r} is not allowed; give seconds > 0, 'auto', 'stream' or "
                            "'none'") from None
    if not value > 0:
        raise WavediffError(f"--chunk-seconds={raw!r} must be > 0 (or 'auto', 'stream', 'none')")
    return value


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff train` and its options."""
    p = sub.add_parser("train", help="train a vocoder, or a class-conditional / unconditional model, on a folder "
                                     "or manifest of audio")
    p.add_argument("--config", required=True, help=f"preset name ({', '.join(PRESETS)}) or YAML/JSON file")
    p.add_argument("--data", required=True, help="folder of audio, or manifest (TSV/CSV with a path column, "
                                                 "LJSpeech metadata.csv, or a .txt list)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, TensorBoard, mel cache)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps in total")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall-clock budget")
    p.add_argument("--max-cpu-hours", type=float, default=None,
                   help="stop after this much CPU time of the training process (all its threads; each process "
                        "under torchrun): a budget that does not depend on what else the machine runs")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start a new run from these weights (a run, a checkpoint or a bundled model's folder; "
                        "the config must build the same network); the optimiser starts afresh")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set train.learning_rate=1e-3 (repeatable)")
    p.add_argument("--precision", choices=TRAINING_PRECISIONS, default=None,
                   help="training precision (default: the config's, 'auto' in the presets: bf16 on CPUs with "
                        "AVX512-BF16/AMX and on CUDA with bf16, else fp32; fp16 on CUDA only)")
    p.add_argument("--implementation", choices=TRAINING_IMPLEMENTATIONS, default=None,
                   help="how the network runs in training: 'fused' (time-major, one autograd function, "
                        "reused buffers; 'auto' on CPU) or 'reference' (the modules as drawn; 'auto' on CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes per training process (default: 0 on CPU, up to 4 per GPU)")
    _add_common(p)


def _add_vocode_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff vocode` and its options."""
    p = sub.add_parser("vocode", help="turn mels (.npy) or recordings (wav/flac) into audio")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", default=None, help="run folder (latest checkpoint) or checkpoint folder "
                                                        "(default: the bundled vocoder)")
    src.add_argument("--model", default=None, help="a bundled vocoder by name (`wavediff models` lists them)")
    p.add_argument("--input", required=True, nargs="+", help="audio files, .npy mel files, or folders of them")
    p.add_argument("--out", required=True, help="output folder for the wavs")
    p.add_argument("--steps", type=int, default=6, help="6 = the paper's fast schedule; T = the full chain; "
                                                         "other values = evenly strided chain")
    p.add_argument("--schedule", default=None, help="comma-separated variance schedule eta (overrides --steps)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same audio)")
    p.add_argument("--batch-size", type=int, default=8, help="utterances vocoded together")
    p.add_argument("--resample", action="store_true",
                   help="resample audio inputs at another rate than the checkpoint's (default: refuse them)")
    p.add_argument("--sampler", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change the checkpoint's sampler: ancestral|ddim|dpm-solver (the update rule), ddim_eta=E, "
                        "start=noise|griffin-lim, start_steps=N, griffin_lim_iters=N, "
                        "consistency=none|griffin-lim, consistency_steps=N, consistency_iters=N (docs/recipes.md)")
    _add_inference(p, default_precision="auto")
    _add_common(p)


def _add_generate_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff generate` and its options."""
    p = sub.add_parser("generate", help="generate clips with a class-conditional or unconditional checkpoint")
    p.add_argument("--checkpoint", required=True, help="run folder (latest checkpoint) or checkpoint folder")
    p.add_argument("--n", type=int, default=10, help="number of clips (default 10)")
    p.add_argument("--label", default=None,
                   help="class name or index for every clip (default: the classes in turn); class models only")
    p.add_argument("--steps", type=int, default=6, help="6 = the fast schedule (Appendix B); T = the full chain, "
                                                         "as the paper's SC09 results; other values = strided")
    p.add_argument("--schedule", default=None, help="comma-separated variance schedule eta (overrides --steps)")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale w (1 = plain conditional, 0 = unconditional branch); "
                        "needs a model trained with model.label_dropout > 0")
    p.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (same seed, same audio)")
    p.add_argument("--temperature", type=float, default=None,
                   help="an autoregressive model's (WaveNet) softmax temperature, 0 = most likely class "
                        "(default: the checkpoint's sampler.temperature, 1)")
    p.add_argument("--sampler", nargs="+", default=[], metavar="KEY=VALUE",
                   help="the diffusion chain's update rule: ancestral|ddim|dpm-solver, ddim_eta=E "
                        "(default: the checkpoint's sampler)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--precision", choices=GENERATION_PRECISIONS, default="fp32",
                   help="fp32 (the reference, default) or bf16 autocast; auto = bf16 where the hardware has it")
    p.add_argument("--out", required=True, help="output folder: <label>_<i>.wav and samples.tsv")
    _add_common(p)


def _add_train_classifier_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff train-classifier` and its options."""
    p = sub.add_parser("train-classifier", help="train the digit classifier of the generative metrics (ResNeXt-style "
                                                "CNN on log-mel) and report its test accuracy")
    p.add_argument("--data", required=True, help="labelled training clips: folder (Speech Commands names or label "
                                                 "folders) or manifest with a label column")
    p.add_argument("--test", default=None, help="labelled test clips, for the reported accuracy")
    p.add_argument("--out", required=True, help="classifier folder (classifier.safetensors, classifier.json)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--clip-seconds", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this many minutes (whole epochs)")
    _add_common(p)


def _add_evaluate_generation_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff evaluate-generation` and its options."""
    p = sub.add_parser("evaluate-generation", help="the paper's SC09 metrics (accuracy, FID, FID-class, IS, mIS, AM, "
                                                   "NDB/K) for the test split, white noise, checkpoints and folders")
    p.add_argument("--classifier", required=True, help="folder from `wavediff train-classifier`")
    p.add_argument("--train", required=True, help="the real training clips (reference statistics)")
    p.add_argument("--test", default=None, help="the real test clips: the ceiling row")
    p.add_argument("--noise", action="store_true", help="add the white-noise floor row")
    p.add_argument("--checkpoint", action="append", default=[], metavar="RUN_OR_CHECKPOINT",
                   help="generate with this checkpoint (repeatable)")
    p.add_argument("--name", action="append", default=None, help="row name of each --checkpoint, in order")
    p.add_argument("--samples", action="append", default=[], metavar="DIR",
                   help="score a folder written by `wavediff generate` (repeatable)")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                   help="guidance scales for class models trained with label dropout (default 1)")
    p.add_argument("--n", type=int, default=1000, help="unconditional clips per checkpoint (default 1000, the paper)")
    p.add_argument("--per-class", type=int, default=100, help="clips per class for class models (default 100)")
    p.add_argument("--steps", type=int, default=6, help="sampling steps (6 = fast schedule, T = full chain)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--precision", choices=GENERATION_PRECISIONS, default="fp32")
    p.add_argument("--keep", type=int, default=3, help="example wavs kept per class and set (default 3)")
    p.add_argument("--out", required=True, help="report folder: results.json, results.md, examples/")
    _add_common(p)


def _add_mel_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff mel` and its options."""
    p = sub.add_parser("mel", help="compute mels (.npy with a .json front-end description)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="use this checkpoint's front-end")
    src.add_argument("--frontend", help="front-end preset: diffwave, hifigan, audioldm")
    p.add_argument("--input", required=True, nargs="+", help="audio files or folders")
    p.add_argument("--out", required=True, help="output folder")
    _add_common(p)


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff evaluate` and its options."""
    p = sub.add_parser("evaluate", help="resynthesise a test set with checkpoints and Griffin-Lim; score it, "
                                        "write tables, plots and a listening page")
    p.add_argument("--checkpoint", required=True, action="append", metavar="RUN_OR_CHECKPOINT",
                   help="run folder (latest checkpoint) or checkpoint folder; repeat to compare several")
    p.add_argument("--label", action="append", default=None,
                   help="name of each checkpoint in the tables, in --checkpoint order (default: run folder names)")
    p.add_argument("--data", required=True, help="folder of audio or manifest of the test set")
    p.add_argument("--out", required=True, help="report folder (results.json/.md, index.html, audio, plots)")
    p.add_argument("--steps", type=int, nargs="+", default=[6, 50], help="sampling steps to evaluate (default 6 50)")
    p.add_argument("--gl-iters", type=int, nargs="*", default=[32, 100],
                   help="Griffin-Lim iteration counts (default 32 100; none to skip)")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--precision", choices=ENGINE_PRECISIONS, default="fp32",
                   help="inference precision of the checkpoints (default fp32, the reference)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (utterance i uses seed + i)")
    p.add_argument("--sampler", action="append", default=[], metavar="LABEL[:KEY=VALUE,...]",
                   help="a sampler variant to compare, e.g. gl-start:start=griffin-lim,start_steps=2 or "
                        "ddim:ddim_eta=0.5; repeat for several; ancestral, ddim or dpm-solver alone runs that rule, "
                        "another LABEL alone the checkpoint's own sampler (default: only that)")
    p.add_argument("--score-max-hz", type=float, default=None, metavar="HZ",
                   help="score below HZ only: low-pass the recording and every system's audio there before the "
                        "metrics, to compare vocoders whose mels stop at different frequencies (e.g. 8000 for the "
                        "hifigan front-end beside a full-band one); default: the full band")
    p.add_argument("--screenshot", action="store_true",
                   help="open the page in headless Chromium, check every player and image, save screenshot.png")
    _add_common(p)


def _add_curves_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff curves` and its options."""
    p = sub.add_parser("curves", help="plot training and validation loss of run folders, or quality against "
                                      "steps of evaluations")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", nargs="+", help="run folders: their training and validation loss")
    which.add_argument("--report", nargs="+", help="`wavediff evaluate` folders (or their results.json) of the "
                       "same utterances: their systems' metrics against steps in one plot")
    p.add_argument("--out", required=True, help="PNG file")
    _add_common(p)


def _add_config_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff config` and its options."""
    p = sub.add_parser("config", help="show a preset as JSON, with its parameter count and receptive field")
    p.add_argument("name", help="preset name or config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    _add_common(p)


def _add_models_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff models` and its options."""
    p = sub.add_parser("models", help="list the vocoders shipped inside the package: data, budget, scores")
    p.add_argument("--json", action="store_true", help="print the model cards as JSON")
    _add_common(p)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff demo` and its options."""
    p = sub.add_parser("demo", help="the main job: synthesise a corpus, train tiny, vocode, compare with Griffin-Lim")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget in minutes (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=60, help="synthetic training utterances (default 60)")
    p.add_argument("--num-test", type=int, default=4, help="held-out synthetic utterances (default 4)")
    _add_common(p)


def _add_import_hifigan_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff import-hifigan` and its options."""
    p = sub.add_parser("import-hifigan", help="turn a generator file of the HiFi-GAN authors' code (g_<step>, "
                                              "{'generator': state_dict}) into a checkpoint that vocode and "
                                              "evaluate take")
    p.add_argument("--generator", required=True, help="the authors' generator file (read with weights_only: "
                                                      "nothing is unpickled)")
    p.add_argument("--config", required=True, help="the preset (or config file) of its architecture and mel: "
                                                    "hifigan-v1, hifigan-v2, hifigan-v3, hifigan-audioldm")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--out", required=True, help="folder for the checkpoint (a run folder: --checkpoint takes it)")
    _add_common(p)


def _add_search_schedule_command(sub: argparse._SubParsersAction) -> None:
    """`wavediff search-schedule` and its options."""
    p = sub.add_parser("search-schedule", help="search an N-step inference schedule for a diffusion vocoder "
                                               "(coarse grid, then refinement), scored on held-out audio")
    p.add_argument("--checkpoint", required=True, help="run folder (latest checkpoint) or checkpoint folder")
    p.add_argument("--data", required=True, help="held-out audio (folder or manifest); its first --utterances score")
    p.add_argument("--steps", type=int, required=True, help="steps of the schedule")
    p.add_argument("--out", required=True, help="JSON file for the schedule (--schedule takes it) and the search's record")
    p.add_argument("--into", default=None, metavar="DIR",
                   help="also write a copy of the checkpoint whose config runs the schedule for --steps N "
                        "(diffusion.schedules)")
    p.add_argument("--utterances", type=int, default=4, help="held-out utterances per candidate (default 4)")
    p.add_argument("--workers", type=int, default=None, help="processes scoring candidates (default: one per core)")
    p.add_argument("--rounds", type=int, default=6, help="refinement rounds (default 6)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (utterance i uses seed + i, the same for all)")
    p.add_argument("--precision", choices=ENGINE_PRECISIONS, default="fp32",
                   help="inference precision while scoring (default fp32; auto as vocode)")
    p.add_argument("--sampler", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change the checkpoint's sampler while scoring: ancestral|ddim|dpm-solver, "
                        "consistency=none, ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(p)


COMMANDS = (_add_train_command, _add_vocode_command, _add_generate_command, _add_train_classifier_command,
            _add_evaluate_generation_command, _add_mel_command, _add_evaluate_command, _add_curves_command,
            _add_config_command, _add_models_command, _add_import_hifigan_command, _add_search_schedule_command,
            _add_demo_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavediff", description="DiffWave: train, vocode, generate, evaluate, demo")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        import torch

        if args.threads is not None:
            if args.threads < 1:
                raise WavediffError(f"--threads={args.threads} must be >= 1")
            torch.set_num_threads(args.threads)
        handler = {"train": _cmd_train, "vocode": _cmd_vocode, "mel": _cmd_mel, "config": _cmd_config,
                   "demo": _cmd_demo, "evaluate": _cmd_evaluate, "curves": _cmd_curves,
                   "generate": _cmd_generate, "train-classifier": _cmd_train_classifier,
                   "evaluate-generation": _cmd_evaluate_generation, "models": _cmd_models,
                   "import-hifigan": _cmd_import_hifigan, "search-schedule": _cmd_search_schedule}[args.command]
        return handler(args)
    except WavediffError as exc:
        if args.debug:
            raise
        print(f"wavediff: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a folder that cannot be created, a disk that is full, a file that cannot be written:
        # the user's environment, not a bug, so one line that names the path
        if args.debug:
            raise
        print(f"wavediff: error: {_describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavediff: interrupted", file=sys.stderr)
        return 130


def _describe_os_error(exc: OSError) -> str:
    """``[Errno 2] No such file or directory: '/proc/x'`` -> ``cannot use '/proc/x': No such file or directory``."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    return f"cannot use {str(exc.filename)!r}: {reason}"


def _cmd_train(args: argparse.Namespace) -> int:
    from wavediff.config import load_config
    from wavediff.training.distributed import configure_rank_logging, end_process, init_distributed
    from wavediff.training.trainer import Trainer

    overrides = list(args.overrides)
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    if getattr(args, "implementation", None):
        overrides.append(f"train.implementation={args.implementation}")
    config = load_config(args.config, overrides)
    if args.max_steps is not None and args.max_steps < 1:
        raise WavediffError(f"--max-steps={args.max_steps} must be >= 1")
    if args.max_steps is not None:
        config = config.with_overrides([f"train.max_steps={args.max_steps}"])
    if args.workers is not None and args.workers < 0:
        raise WavediffError(f"--workers={args.workers} must be >= 0")
    for flag, value in (("--max-minutes", args.max_minutes), ("--max-cpu-hours", args.max_cpu_hours)):
        if value is not None and not value > 0:
            raise WavediffError(f"{flag}={value} must be > 0")
    ctx = init_distributed(args.device)
    configure_rank_logging(ctx.rank)
    trainer = None
    try:
        if ctx.is_main:
            _log_to_file(Path(args.out) / "train.log")
        trainer = Trainer(config, args.data, args.out, resume=args.resume, max_minutes=args.max_minutes,
                          max_cpu_hours=args.max_cpu_hours, progress=not args.no_progress, workers=args.workers, distributed=ctx,
                          init_from=args.init_from)
        result = trainer.fit()
    finally:
        del trainer   # its DDP wrapper holds the process group: release it before the group is destroyed
        ctx.shutdown()
    last = result.losses[-1][1] if result.losses else float("nan")
    log.info("trained steps %d..%d; last loss %.4f; checkpoint %s", result.start_step, result.final_step,
             last, result.checkpoint)
    if result.stopped_by and result.stopped_by != "time budget":
        log.info("stopped by %s; continue with the same command and --resume", result.stopped_by)
    if ctx.enabled:
        end_process(0)   # gloo's threads outlive the group once DDP was built: no interpreter finalisation
    return 0


def _cmd_vocode(args: argparse.Namespace) -> int:
    from wavediff.pipelines import Vocoder, vocode_files

    options = dict(device=args.device, precision=args.precision, weights=args.weights,
                   chunk_seconds=_chunk_seconds(args.chunk_seconds), max_memory_gb=args.max_memory_gb)
    if args.checkpoint is not None:
        vocoder = Vocoder.from_checkpoint(args.checkpoint, **options)
    else:
        vocoder = Vocoder.pretrained(args.model, **options)
    log.info("vocoding on %s in %s (%s weights)", vocoder.device, vocoder.precision, vocoder.weights)
    schedule = _parse_schedule(args.schedule)
    sampler = vocoder.config.sampler.with_overrides(args.sampler)
    written = vocode_files(vocoder, args.input, args.out, steps=args.steps, etas=schedule, seed=args.seed,
                           batch_size=args.batch_size, resample=args.resample, sampler=sampler)
    log.info("wrote %d file(s) to %s", len(written), args.out)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from wavediff.pipelines import Synthesizer, generate_files

    generator = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    sampler = generator.config.sampler.with_overrides(args.sampler)
    written = generate_files(generator, args.out, args.n, args.label, steps=args.steps,
                             etas=_parse_schedule(args.schedule), seed=args.seed, guidance_scale=args.guidance,
                             batch_size=args.batch_size, temperature=args.temperature, sampler=sampler)
    log.info("wrote %d clip(s) and samples.tsv to %s", len(written), args.out)
    return 0


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from wavediff.devices import pick_device
    from wavediff.training.classifier_trainer import ClassifierTraining, train_classifier

    settings = ClassifierTraining(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                  sample_rate=args.sample_rate, clip_seconds=args.clip_seconds, seed=args.seed)
    _log_to_file(Path(args.out) / "train.log")
    classifier = train_classifier(args.data, args.test, args.out, settings=settings, device=pick_device(args.device),
                                  max_minutes=args.max_minutes)
    acc = classifier.info.get("test_accuracy")
    print(f"classifier saved to {args.out}; " + (f"test accuracy {acc:.4f} on {classifier.info['test_clips']} clips"
                                                  if acc is not None else "no test set given"))
    return 0


def _cmd_evaluate_generation(args: argparse.Namespace) -> int:
    import shlex
    import time

    from wavediff.evaluation import generation as ev
    from wavediff.metrics.audio_classifier import AudioClassifier

    if args.n < 2 or args.per_class < 2:
        raise WavediffError(f"--n={args.n} and --per-class={args.per_class} must be >= 2 (FID needs two clips)")
    if args.name is not None and len(args.name) != len(args.checkpoint):
        raise WavediffError(f"{len(args.name)} --name for {len(args.checkpoint)} --checkpoint; give one per checkpoint")
    classifier = AudioClassifier.load(args.classifier)
    started = time.time()
    ref = ev.reference_stats(classifier, args.train, seed=args.seed)
    log.info("reference: %d training clips", ref.clips)
    sets: list[ev.ClipSet] = []
    if args.test:
        sets.append(ev.test_split_set(classifier, args.test))
    if args.noise:
        n_noise = max(args.n, args.per_class * len(classifier.class_names))
        sets.append(ev.white_noise_set(n_noise, classifier.clip_samples, len(classifier.class_names), ref.rms,
                                       args.seed))
    for i, ckpt in enumerate(args.checkpoint):
        sets.extend(ev.checkpoint_sets(ckpt, n=args.n, per_class=args.per_class, guidance_scales=args.guidance,
                                       steps=args.steps, seed=args.seed, precision=args.precision,
                                       device=args.device, batch_size=args.batch_size,
                                       name=None if args.name is None else args.name[i]))
    sets.extend(ev.folder_set(folder, classifier) for folder in args.samples)
    if not sets:
        raise WavediffError("nothing to score: give --test, --noise, --checkpoint or --samples")
    results = []
    for s in sets:
        metrics = ev.score_set(classifier, ref, s)
        results.append({"name": s.name, "metrics": metrics, "meta": s.meta})
        log.info("%s: %s", s.name, {k: v for k, v in metrics.items() if k != "fid_class_per_class"})
    header = {"command": "wavediff " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "classifier": args.classifier,
              "classifier test accuracy": classifier.info.get("test_accuracy"),
              "reference": f"{args.train} ({ref.clips} clips)", "minutes": round((time.time() - started) / 60, 1)}
    paths = ev.write_report(results, sets, args.out, sample_rate=classifier.sample_rate,
                            class_names=classifier.class_names, keep_per_class=args.keep, header=header)
    print(ev.markdown_table(results))
    log.info("wrote %s and %s", paths["markdown"], paths["examples"])
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import shlex

    from tqdm import tqdm

    from wavediff.evaluation.report import markdown_table, write_report
    from wavediff.evaluation.runner import evaluate, parse_sampler_variant

    command = "wavediff " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    report = evaluate(args.checkpoint, args.data, args.out, steps=args.steps, gl_iters=args.gl_iters, seed=args.seed,
                      precision=args.precision, samplers=[parse_sampler_variant(v) for v in args.sampler],
                      limit=args.limit, device=args.device, command=command, labels=args.label,
                      score_max_hz=args.score_max_hz,
                      progress=lambda items: tqdm(items, desc="evaluate", unit="utt"))
    written = write_report(report, args.out)
    print(markdown_table(report))
    log.info("wrote %s", ", ".join(str(p) for p in written.values()))
    if args.screenshot:
        from wavediff.evaluation.browser import check_page

        check = check_page(written["page"], Path(args.out) / "screenshot.png")
        log.info("page check: %d/%d players and %d/%d images loaded; screenshot %s",
                 len(check.players) - len(check.broken_players), len(check.players),
                 len(check.images) - len(check.broken_images), len(check.images), check.screenshot)
        if not check.ok:
            raise WavediffError(f"the listening page has broken media: players {check.broken_players[:5]}, "
                                f"images {check.broken_images[:5]}")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from wavediff.evaluation.plots import plot_metrics_vs_steps, plot_training_curves
    from wavediff.evaluation.runner import merge_reports, read_report

    if args.report:
        path = plot_metrics_vs_steps(merge_reports([read_report(r) for r in args.report]), args.out)
    else:
        path = plot_training_curves(args.run, args.out)
    log.info("wrote %s", path)
    return 0


def _cmd_mel(args: argparse.Namespace) -> int:
    from wavediff.pipelines import write_mels

    written = write_mels(args.input, args.out, checkpoint=args.checkpoint, frontend=args.frontend)
    log.info("wrote %d mel file(s) to %s", len(written), args.out)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from wavediff.config import load_config
    from wavediff.models.family import family_of

    config = load_config(args.name, args.overrides)
    family = family_of(config)
    print(config.to_json())
    info = family.describe(family.build_model(config), config)
    facts = [f"family: {family.name}", f"parameters: {info.pop('parameters'):,}"]
    facts += [f"receptive field: {v} samples" if k == "receptive_field" else
              f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')}: {v}"
              for k, v in info.items()]
    print("# " + "; ".join(facts))
    return 0


def _cmd_import_hifigan(args: argparse.Namespace) -> int:
    from wavediff.checkpoint import save_checkpoint
    from wavediff.config import load_config
    from wavediff.models.family import family_of
    from wavediff.models.hifigan.reference import checkpoint_weights, read_reference_generator

    config = load_config(args.config, args.overrides)
    if config.family != "hifigan":
        raise WavediffError(f"--config {args.config!r} is a {config.family!r} config; give a HiFi-GAN one "
                            f"(hifigan-v1, hifigan-v2, hifigan-v3, hifigan-audioldm)")
    family_of(config).check_config(config)
    generator = read_reference_generator(args.generator, config.mel.n_mels, config.hifigan)
    ckpt = save_checkpoint(Path(args.out) / "checkpoints", 0, config, checkpoint_weights(generator), None,
                           keep_last=1)
    log.info("imported %s as %s (%s preset); vocode with --checkpoint %s", args.generator, ckpt, config.preset,
             args.out)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from wavediff.pretrained import DEFAULT_VOCODER, bundled_models, card_lines

    models = bundled_models()
    if args.json:
        print(json.dumps([{"name": m.name, "path": str(m.path), **m.card} for m in models], indent=2,
                         ensure_ascii=False))
        return 0
    if not models:
        print("no bundled models in this installation")
    for m in models:
        lines = card_lines(m)
        if m.name == DEFAULT_VOCODER:
            lines[0] += "  [default for `wavediff vocode` without --checkpoint]"
        print("\n".join(lines))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from wavediff.demo import run_demo

    if args.minutes <= 0:
        raise WavediffError(f"--minutes={args.minutes} must be > 0")
    if args.num_train < 1 or args.num_test < 1:
        raise WavediffError(f"--num-train={args.num_train} and --num-test={args.num_test} must be >= 1")
    print(run_demo(Path(args.out), minutes=args.minutes, seed=args.seed, device=args.device,
                   num_train=args.num_train, num_test=args.num_test))
    return 0


def _cmd_search_schedule(args: argparse.Namespace) -> int:
    import os
    from dataclasses import replace

    from wavediff.checkpoint import load_config_file, load_weights, resolve_checkpoint, save_checkpoint
    from wavediff.evaluation.schedule_search import search_schedule

    def bar(items, stage, count):
        if args.no_progress:
            return items
        from tqdm import tqdm

        return tqdm(items, total=count, desc=stage, unit="schedule", leave=False)

    out = Path(args.out)
    workers = args.workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    result = search_schedule(args.checkpoint, args.data, args.steps, utterances=args.utterances, workers=workers,
                             rounds=args.rounds, seed=args.seed, precision=args.precision, sampler=args.sampler,
                             progress=bar)
    record = {"checkpoint": str(args.checkpoint), "data": str(args.data), "sampler": args.sampler,
              "workers": workers, "command": "wavediff " + " ".join(sys.argv[1:]), **result.to_dict()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    b, base = result.best, result.baseline
    log.info("best %d-step schedule %s: log-mel L1 %.4f, MR-STFT %.4f (%s %s: %.4f, %.4f); %.0f s; wrote %s",
             args.steps, [float(f"{e:.4g}") for e in b.etas], b.log_mel_l1, b.mr_stft, result.baseline_name,
             [float(f"{e:.4g}") for e in base.etas], base.log_mel_l1, base.mr_stft, result.wall_seconds, out)
    if args.into:
        ckpt = resolve_checkpoint(args.checkpoint)
        config = load_config_file(ckpt)
        d = config.diffusion
        kept = tuple(s for s in d.schedules if len(s) != args.steps)
        config = replace(config, diffusion=replace(d, schedules=kept + (tuple(b.etas),)))
        copy = save_checkpoint(Path(args.into) / "checkpoints", 0, config, load_weights(ckpt), None, keep_last=1)
        log.info("wrote %s: its config runs the schedule for --steps %d", copy, args.steps)
    return 0


def _parse_schedule(text: str | None) -> list[float] | None:
    """``--schedule``: comma-separated etas, or a JSON file with ``"etas"`` (``wavediff search-schedule --out``)."""
    if text is None:
        return None
    if text.endswith(".json"):
        try:
            etas = json.loads(Path(text).read_text())["etas"]
            return [float(x) for x in etas]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WavediffError(f"--schedule={text!r}: cannot read a list of etas from it ({exc})") from None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WavediffError(f"--schedule={text!r} must be comma-separated numbers, e.g. 1e-4,1e-3,0.01,0.05,0.2,0.5")


def _log_to_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
