"""Models shipped inside the package: each a folder of ``model.safetensors`` (weights),
``config.json`` (the run's config, its sampler included) and ``card.json`` (the model card:
training data and its licences, budget, scores), read offline.

>>> [m.name for m in bundled_models()]                      # doctest: +SKIP
['speech22k-tiny']
>>> Vocoder.pretrained()                                     # doctest: +SKIP  (wavediff.pipelines)
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from wavediff.errors import WavediffError

DEFAULT_VOCODER = "speech22k-tiny"
CARD_FILE = "card.json"
MODELS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BundledModel:
    """A shipped model: its name, its folder (a checkpoint folder any ``--checkpoint`` takes) and its card."""

    name: str
    path: Path
    card: dict[str, Any]

    @property
    def summary(self) -> str:
        return str(self.card.get("summary", ""))


def bundled_models(root: Path = MODELS_DIR) -> list[BundledModel]:
    """Every model shipped under ``root``, by name."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / CARD_FILE).is_file()):
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            continue
        found.append(BundledModel(folder.name, folder, json.loads((folder / CARD_FILE).read_text())))
    return found


def bundled_model(name: str | None = None, root: Path = MODELS_DIR) -> BundledModel:
    """The shipped model ``name`` (default: :data:`DEFAULT_VOCODER`)."""
    name = name or DEFAULT_VOCODER
    models = {m.name: m for m in bundled_models(root)}
    if name not in models:
        raise WavediffError(f"no bundled model {name!r}; bundled: {sorted(models) or 'none'}")
    return models[name]


def write_bundle(checkpoint: Path, name: str, card: Mapping[str, Any], config_json: str,
                 root: Path = MODELS_DIR) -> Path:
    """Copy a checkpoint's weights into ``root/name`` with ``config_json`` (the run's config, with
    the sampler it ships with) and ``card``; returns the folder. Training state is not copied."""
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / "model.safetensors", target / "model.safetensors")
    (target / "config.json").write_text(config_json)
    (target / CARD_FILE).write_text(json.dumps(dict(card), indent=2, ensure_ascii=False) + "\n")
    return target


def card_lines(model: BundledModel) -> list[str]:
    """The card as text lines for ``wavediff models``."""
    c = model.card
    lines = [f"{model.name}: {model.summary}"]
    for key, label in (("training_data", "trained on"), ("licences", "data licences"), ("budget", "budget"),
                       ("sampler", "sampler"), ("schedules_note", "schedules"), ("date", "date")):
        if c.get(key):
            lines.append(f"  {label}: {c[key]}")
    evaluation = c.get("evaluation") or {}
    if evaluation.get("data"):
        lines.append(f"  scored on: {evaluation['data']} ({evaluation.get('utterances', '?')} utterances, "
                     f"{evaluation.get('precision', '?')} engine, {evaluation.get('date', '?')})")
    for row in c.get("scores", []):
        cells = ", ".join(f"{k} {v}" for k, v in row.items() if k != "system")
        lines.append(f"  {row.get('system', '?')}: {cells}")
    lines.append(f"  folder: {model.path}")
    return lines
