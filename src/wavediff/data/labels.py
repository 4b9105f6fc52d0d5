"""Class labels of clips: where they come from, their order, and names <-> indices.

A clip's label is, in this order of precedence:

1. the manifest's label column (``label``, ``class``, ``digit`` or ``word``);
2. the Speech Commands file name ``<Word>_<speaker>_nohash_<n>.<ext>`` (``Seven_0a1b_nohash_0.wav``
   is ``seven``);
3. for a folder, the sub-folder of that folder the clip lies in (``data/seven/x.wav``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Sequence

from wavediff.data.manifest import AudioEntry, read_entries
from wavediff.errors import WavediffError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SPEECH_COMMANDS_NAME = re.compile(r"^([A-Za-z]+)_[0-9A-Za-z]+_nohash_\d+$")


def label_from_path(path: Path, root: Path | None = None) -> str | None:
    """The label a file's name (Speech Commands) or label folder gives it, else ``None``."""
    match = _SPEECH_COMMANDS_NAME.match(path.stem)
    if match:
        return match.group(1).lower()
    if root is not None:
        try:
            rel = path.relative_to(root)
        except ValueError:
            return None
        if len(rel.parts) == 2:
            return rel.parts[0].lower()
    return None


def read_labelled_entries(source: str | Path, *, missing: Literal["error", "keep"] = "error") -> list[AudioEntry]:
    """:func:`~wavediff.data.manifest.read_entries` with each entry's label filled in where the
    manifest, the file name or the label folder gives one (others keep ``None``)."""
    src = Path(source)
    root = src if src.is_dir() else None
    out = []
    for entry in read_entries(src, missing=missing):
        label = entry.label if entry.label else label_from_path(entry.path, root)
        out.append(AudioEntry(entry.path, label))
    return out


def class_order(labels: Sequence[str]) -> tuple[str, ...]:
    """The distinct labels in a canonical order: digit words as zero..nine, integers by value,
    anything else alphabetically."""
    names = sorted(set(labels))
    if set(names) <= set(DIGIT_WORDS):
        return tuple(w for w in DIGIT_WORDS if w in names)
    if all(n.lstrip("-").isdigit() for n in names):
        return tuple(sorted(names, key=int))
    return tuple(names)


def label_index(value: str | int, class_names: Sequence[str]) -> int:
    """A label given by name (case-insensitive) or index -> its index.

    Raises:
        WavediffError: unknown name or index out of range, listing the known labels.
    """
    names = [n.lower() for n in class_names]
    if isinstance(value, str):
        text = value.strip().lower()
        if text in names:
            return names.index(text)
        if text.lstrip("-").isdigit():
            value = int(text)
        else:
            raise WavediffError(f"unknown label {value!r}; known labels: {list(class_names)} "
                                f"(or their indices 0..{len(names) - 1})")
    if not 0 <= int(value) < len(names):
        raise WavediffError(f"label index {value} is out of range; known labels: "
                            f"{list(enumerate(class_names))}")
    return int(value)
