"""Ship a trained vocoder inside the package: weights, config (with the sampler it ships with)
and a model card whose scores come from a ``wavediff evaluate`` report on held-out speech.

The bundle is replaced only when the new row scores better than the bundled one (PESQ-WB,
then MR-STFT), unless ``--force``:

    wavediff evaluate --checkpoint runs/bundled --label candidate --data speech22k/test_unseen.tsv \\
        --steps 6 --gl-iters 32 --sampler gla:consistency=griffin-lim,consistency_steps=6 --out runs/eval
    python benchmarks/bundle_vocoder.py --checkpoint runs/bundled --eval runs/eval \\
        --system "candidate, 6 steps, gla" --sampler consistency=griffin-lim consistency_steps=6 \\
        --budget "2.1 CPU-hours (2 cores x 63 min), no GPU" --training-data "speech22k train (...)"
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

from wavediff.pretrained import DEFAULT_VOCODER, MODELS_DIR, bundled_models, write_bundle
from wavediff.checkpoint import load_config_file, resolve_checkpoint

log = logging.getLogger("bundle")
CARD_METRICS = {"log_mel_l1": "log-mel L1", "mr_stft": "MR-STFT", "pesq_wb": "PESQ-WB", "stoi": "STOI",
                "vuv_f1": "V/UV F1", "f0_rmse_cents": "F0 RMSE (cents)"}


def score_row(system: dict) -> dict:
    row = {"system": system["name"]}
    for key, label in CARD_METRICS.items():
        s = system["metrics"].get(key)
        row[label] = None if s is None or s["mean"] is None else round(float(s["mean"]), 3)
    row["RTF"] = round(float(system["rtf"]), 3)
    return row


def better(new: dict, old: dict) -> bool:
    """PESQ-WB first, MR-STFT to break a tie."""
    a, b = new.get("PESQ-WB") or 0.0, old.get("PESQ-WB") or 0.0
    if abs(a - b) > 1e-3:
        return a > b
    return (new.get("MR-STFT") or 1e9) < (old.get("MR-STFT") or 1e9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    ap.add_argument("--eval", required=True, help="report folder of `wavediff evaluate` holding the candidate's row")
    ap.add_argument("--system", required=True, help="the candidate's row name in that report")
    ap.add_argument("--sampler", nargs="*", default=[], help="sampler settings the bundle ships with (key=value)")
    ap.add_argument("--name", default=DEFAULT_VOCODER)
    ap.add_argument("--summary", default="DiffWave vocoder for 22.05 kHz speech, trained on CPU")
    ap.add_argument("--training-data", required=True)
    ap.add_argument("--licences", required=True, help="the training data's licences")
    ap.add_argument("--budget", required=True, help="total training budget, e.g. '2.1 CPU-hours, no GPU'")
    ap.add_argument("--root", default=str(MODELS_DIR), help=argparse.SUPPRESS)
    ap.add_argument("--force", action="store_true", help="replace the bundle even if it does not score better")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = json.loads((Path(args.eval) / "results.json").read_text())
    rows = {s["name"]: s for s in report["systems"]}
    if args.system not in rows:
        raise SystemExit(f"no row {args.system!r} in {args.eval}; rows: {sorted(rows)}")
    candidate = score_row(rows[args.system])
    baselines = [score_row(s) for s in report["systems"] if s.get("kind") == "griffin-lim"]
    current = {m.name: m for m in bundled_models(Path(args.root))}.get(args.name)
    if current is not None and not args.force:
        old = next((r for r in current.card.get("scores", []) if r.get("system") == current.card.get("row")), None)
        if old is not None and not better(candidate, old):
            log.info("the bundled %s scores %s; the candidate %s: not replaced", args.name, old, candidate)
            return
    ckpt = resolve_checkpoint(args.checkpoint)
    config = load_config_file(ckpt)
    config = type(config).from_dict({**config.to_dict(),
                                     "sampler": dataclasses.asdict(config.sampler.with_overrides(args.sampler))})
    step = int(ckpt.name[5:]) if ckpt.name.startswith("step_") else None
    meta = report["meta"]
    card = {
        "summary": args.summary,
        "kind": "vocoder",
        "preset": config.preset,
        "mel_frontend": config.mel.name,
        "sample_rate": config.mel.sample_rate,
        "training_data": args.training_data,
        "licences": args.licences,
        "budget": args.budget,
        "training_steps": step,
        "sampler": ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config.sampler).items()),
        "row": args.system,
        "scores": [candidate, *baselines],
        "evaluation": {"data": meta.get("data"), "utterances": meta.get("utterances"), "date": meta.get("date"),
                       "command": meta.get("command"), "machine": meta.get("machine"),
                       "precision": meta.get("precision")},
        "date": dt.date.today().isoformat(),
    }
    folder = write_bundle(ckpt, args.name, card, config.to_json(), Path(args.root))
    log.info("bundled %s from %s into %s: %s", args.name, ckpt, folder, candidate)


if __name__ == "__main__":
    main()
