"""Find training audio: a folder, a TSV/CSV manifest with a path column, or LJSpeech."""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wavediff.audio.io import AUDIO_EXTENSIONS
from wavediff.errors import WavediffError

PATH_COLUMNS = ("path", "audio", "audio_path", "file", "filename", "wav", "wav_path")
LABEL_COLUMNS = ("label", "class", "digit", "word")


@dataclass(frozen=True)
class AudioEntry:
    """One utterance: its file and optional label."""

    path: Path
    label: str | None = None


def read_entries(source: str | Path, *, missing: Literal["error", "keep"] = "error") -> list[AudioEntry]:
    """List the audio of a folder (recursively, sorted) or of a manifest file.

    Manifests: ``.tsv``/``.csv`` with a header holding one of the columns
    ``path, audio, audio_path, file, filename, wav, wav_path`` (and optionally ``label``),
    paths relative to the manifest's folder; or LJSpeech's ``metadata.csv``
    (``ID|text|normalised text``, no header, audio in ``wavs/ID.wav``); or a ``.txt``
    list with one path per line.

    A manifest that lists files that do not exist is refused (``missing='error'``), or they are
    kept (``'keep'``) for the trainer's data check to skip and count as unreadable.
    """
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if not files:
            raise WavediffError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {str(src)!r}")
        return [AudioEntry(p) for p in files]
    if not src.is_file():
        raise WavediffError(f"data path not found: {str(src)!r} (give a folder of audio or a manifest)")
    if src.suffix.lower() in AUDIO_EXTENSIONS:
        return [AudioEntry(src)]
    try:
        text = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WavediffError(f"cannot read manifest {str(src)!r}: {exc}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise WavediffError(f"manifest {str(src)!r} is empty")
    root = src.parent
    if src.suffix.lower() == ".txt":
        entries = [AudioEntry(_resolve(root, ln.strip())) for ln in lines]
    elif "|" in lines[0] and src.suffix.lower() == ".csv":
        entries = _read_ljspeech(root, lines, src)
    else:
        entries = _read_table(root, text, src)
    absent = [e.path for e in entries if not _is_file(e.path)]
    if absent and missing == "error":
        raise WavediffError(
            f"manifest {str(src)!r} lists {len(absent)} missing file(s), first: {str(absent[0])!r}"
        )
    if len(absent) == len(entries):
        raise WavediffError(f"none of the {len(entries)} files that manifest {str(src)!r} lists exists "
                            f"(first: {str(absent[0])!r})")
    return entries


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false for names the OS cannot even look up (NUL bytes, too long)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _resolve(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def _read_ljspeech(root: Path, lines: list[str], src: Path) -> list[AudioEntry]:
    entries = []
    for ln in lines:
        ident = ln.split("|", 1)[0].strip()
        if not ident:
            raise WavediffError(f"LJSpeech manifest {str(src)!r} has a line with no ID: {ln[:60]!r}")
        entries.append(AudioEntry(root / "wavs" / f"{ident}.wav"))
    return entries


def _read_table(root: Path, text: str, src: Path) -> list[AudioEntry]:
    delimiter = "\t" if src.suffix.lower() == ".tsv" or "\t" in text.splitlines()[0] else ","
    try:
        return _read_rows(root, text, src, delimiter)
    except csv.Error as exc:
        raise WavediffError(f"manifest {str(src)!r} is not a valid table: {exc}") from None


def _read_rows(root: Path, text: str, src: Path, delimiter: str) -> list[AudioEntry]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    path_col = next((c for c in PATH_COLUMNS if c in header), None)
    if path_col is None:
        raise WavediffError(
            f"manifest {str(src)!r} has no path column; header is {header}, expected one of {list(PATH_COLUMNS)}"
        )
    label_col = next((c for c in LABEL_COLUMNS if c in header), None)
    entries = []
    for row in reader:
        # cells beyond the header land under the key None as a list: ignored
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and not isinstance(v, list)}
        if not row.get(path_col):
            continue
        entries.append(AudioEntry(_resolve(root, row[path_col]), row.get(label_col) if label_col else None))
    if not entries:
        raise WavediffError(f"manifest {str(src)!r} lists no files")
    return entries


def split_entries(entries: list[AudioEntry], val_count: int, val_fraction: float,
                  seed: int = 0) -> tuple[list[AudioEntry], list[AudioEntry]]:
    """Deterministic train/validation split.

    The validation set has ``max(val_count, round(val_fraction * N))`` entries, but never
    more than a fifth of the data and never all of it (a single file goes to training).
    """
    train_idx, val_idx = split_indices(len(entries), val_count, val_fraction, seed)
    return [entries[i] for i in train_idx], [entries[i] for i in val_idx]


def split_indices(n: int, val_count: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """The indices of :func:`split_entries`' training and validation entries, each in order."""
    n_val = max(val_count, round(val_fraction * n))
    n_val = min(n_val, n // 5) if n >= 5 else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    return [i for i in range(n) if i not in val_idx], sorted(val_idx)
