"""Checkpoint folders: written atomically, kept last-N, loaded without unpickling.

Layout of a run folder::

    RUN_DIR/config.json
    RUN_DIR/checkpoints/step_00001000/model.safetensors   EMA weights (inference)
    RUN_DIR/checkpoints/step_00001000/config.json         the RunConfig + format version
    RUN_DIR/checkpoints/step_00001000/training_state.pt   optimizer, raw weights, step, EMA
    RUN_DIR/checkpoints/latest                            name of the newest checkpoint

``training_state.pt`` holds only tensors and plain containers and is read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from wavediff.config import FORMAT_VERSION, RunConfig
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
LATEST_FILE = "latest"
PARTS_SHA_KEY = "weights_sha256_parts"   # metadata: {top-level module name: SHA-256 of its tensors}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(root: Path, step: int, config: RunConfig, weights: dict[str, torch.Tensor],
                    training_state: dict[str, Any] | None, keep_last: int) -> Path:
    """Write ``root/step_XXXXXXXX`` atomically (temporary folder, then rename).

    Returns the checkpoint folder. Older ``step_*`` folders beyond ``keep_last`` are removed.
    """
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
        metadata = {"format_version": str(FORMAT_VERSION), "step": str(step), "weights_sha256": tensors_sha256(tensors),
                    PARTS_SHA_KEY: json.dumps({part: tensors_sha256(group)
                                               for part, group in _by_part(tensors).items()}, sort_keys=True)}
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
            metadata["training_state_sha256"] = file_sha256(tmp / STATE_FILE)
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=metadata)
        (tmp / CONFIG_FILE).write_text(config.to_json())
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(root / LATEST_FILE, name + "\n")
    for old in list_checkpoints(root)[:-keep_last]:
        _remove(old)
    return final


def _remove(folder: Path) -> None:
    """Delete a checkpoint so that a kill part-way never leaves a partial ``step_*`` folder:
    it is renamed to a hidden temporary name first."""
    trash = folder.with_name(f".{folder.name}.deleting.tmp")
    try:
        os.rename(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete what a killed writer left in ``root`` (hidden ``.*.tmp`` folders and files); returns them."""
    if not root.is_dir():
        return []
    stale = sorted(root.glob(".*.tmp"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished checkpoint temporaries from %s", len(stale), root)
    return stale


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir() and (p / WEIGHTS_FILE).is_file()
                  and (p / CONFIG_FILE).is_file())


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder or a run folder (its latest checkpoint)."""
    p = Path(path)
    if not p.exists():
        raise WavediffError(f"checkpoint not found: {str(p)!r}")
    if (p / WEIGHTS_FILE).is_file():
        return p
    root = p / "checkpoints"
    latest = root / LATEST_FILE
    if latest.is_file():
        candidate = root / latest.read_text().strip()
        if (candidate / WEIGHTS_FILE).is_file():
            return candidate
    found = list_checkpoints(root)
    if not found:
        raise WavediffError(
            f"no checkpoint in {str(p)!r}: expected {WEIGHTS_FILE} there or a run folder with checkpoints/"
        )
    return found[-1]


def load_config_file(ckpt: Path) -> RunConfig:
    path = ckpt / CONFIG_FILE
    if not path.is_file():
        raise WavediffError(f"checkpoint {str(ckpt)!r} has no {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WavediffError(f"cannot read {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise WavediffError(f"{str(path)!r} must hold a JSON object, not {type(data).__name__}")
    version = data.get("format_version", None)
    if version != FORMAT_VERSION:
        raise WavediffError(f"checkpoint format_version={version!r} is not supported; this wavediff reads {FORMAT_VERSION}")
    return RunConfig.from_dict(data)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` (in name order)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        v = tensors[k].detach().contiguous().cpu()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _metadata(ckpt: Path) -> dict[str, str]:
    try:
        with safe_open(str(ckpt / WEIGHTS_FILE), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise WavediffError(f"cannot read weights {str(ckpt / WEIGHTS_FILE)!r}: {exc}") from None


def weight_part(name: str) -> str:
    """The top-level part a weight belongs to: the first component of its name (``generator``)."""
    return name.split(".", 1)[0]


def _by_part(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Tensors grouped by :func:`weight_part` (a model's top-level modules)."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        parts.setdefault(weight_part(name), {})[name] = tensor
    return parts


def load_weights(ckpt: Path, parts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The EMA weights of a checkpoint, checked against the SHA-256 recorded when they were
    written (files written by other tools, without one, are taken as they are).

    ``parts``: only the tensors under these top-level names (e.g. ``('generator',)``). A file that
    records each part's SHA-256 is read for those tensors alone; an older one is read and checked
    whole, then cut to the parts."""
    path = ckpt / WEIGHTS_FILE
    metadata = _metadata(ckpt)
    recorded = json.loads(metadata.get(PARTS_SHA_KEY, "{}"))
    damaged = WavediffError(f"weights {str(path)!r} are damaged: their SHA-256 differs from the one recorded when "
                            "they were written")
    try:
        if parts is not None and recorded and all(part in recorded for part in parts):
            with safe_open(str(path), framework="pt") as fh:
                weights = {k: fh.get_tensor(k) for k in fh.keys() if weight_part(k) in parts}
            grouped = _by_part(weights)
            if any(tensors_sha256(grouped.get(part, {})) != recorded[part] for part in parts):
                raise damaged
            return weights
        weights = load_file(str(path))
    except WavediffError:
        raise
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise WavediffError(f"cannot read weights {str(path)!r}: {exc}") from None
    expected = metadata.get("weights_sha256")
    if expected is not None and tensors_sha256(weights) != expected:
        raise damaged
    if parts is not None:
        weights = {k: v for k, v in weights.items() if weight_part(k) in parts}
    return weights


def check_state_matches(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights whose names or shapes disagree with the model, naming the first mismatch."""
    expected = model.state_dict()
    for k, v in expected.items():
        if k not in weights:
            raise WavediffError(f"{where}: weights lack {k!r} that the config's model has")
        if tuple(weights[k].shape) != tuple(v.shape):
            raise WavediffError(
                f"{where}: weight {k!r} has shape {tuple(weights[k].shape)}, the config's model expects {tuple(v.shape)}"
            )
        if weights[k].is_floating_point() != v.is_floating_point():
            raise WavediffError(f"{where}: weight {k!r} has dtype {weights[k].dtype}, the config's model expects {v.dtype}")
        if weights[k].is_floating_point() and not bool(torch.isfinite(weights[k]).all()):
            raise WavediffError(f"{where}: weight {k!r} holds NaN or Inf values")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise WavediffError(f"{where}: weights hold {extra[0]!r} that the config's model does not have")


TRAINING_STATE_KEYS = ("model", "ema", "ema_updates", "step")
OPTIMIZER_KEYS = ("optimizers", "optimizer")   # one state per phase; "optimizer": one, before phases


def load_training_state(ckpt: Path) -> dict[str, Any]:
    """The optimizer, raw weights, EMA, step and RNG states of a checkpoint.

    Read with ``torch.load(weights_only=True)``: a file holding anything but tensors and plain
    containers (a pickled object, code) is refused, never executed.
    """
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise WavediffError(f"checkpoint {str(ckpt)!r} has no {STATE_FILE}; it cannot be resumed")
    expected = None
    if (ckpt / WEIGHTS_FILE).is_file():
        try:
            expected = _metadata(ckpt).get("training_state_sha256")
        except WavediffError as exc:  # resuming needs only the training state
            log.warning("%s; the training state is loaded without its checksum", exc)
    if expected is not None and file_sha256(path) != expected:
        raise WavediffError(f"training state {str(path)!r} is damaged: its SHA-256 differs from the one recorded "
                            "when it was written")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ... depending on the damage
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WavediffError(
            f"cannot load training state {str(path)!r}: it is corrupt, or holds objects other than tensors and "
            f"plain containers, which wavediff never unpickles ({type(exc).__name__}: {first})"
        ) from None
    if (not isinstance(state, dict) or any(k not in state for k in TRAINING_STATE_KEYS)
            or not any(k in state for k in OPTIMIZER_KEYS)):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise WavediffError(f"training state {str(path)!r} must hold {list(TRAINING_STATE_KEYS)} and "
                            f"'optimizers'; found {found}")
    if not isinstance(state["model"], dict) or not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        raise WavediffError(f"training state {str(path)!r}: 'model' must map names to tensors")
    return state
