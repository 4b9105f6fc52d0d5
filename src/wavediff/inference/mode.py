"""How the inference engine covers a batch's rows at each step: one type for the three modes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wavediff.errors import WavediffError

ModeKind = Literal["one-pass", "chunks", "stream"]
MODE_KINDS: tuple[str, ...] = ("one-pass", "chunks", "stream")


@dataclass(frozen=True)
class EngineMode:
    """One of three ways to run the network over the layout at each reverse step.

    - ``one-pass`` (:meth:`one_pass`): the whole layout at once, every layer's conditioner
      projection kept for all steps when it fits in memory.
    - ``chunks`` (:meth:`chunks`): windows of ``chunk_samples`` rows plus the network's reach
      on each side; only each window's centre is kept, which equals the one-pass output.
    - ``stream`` (:meth:`stream`): every step and layer advance together through the rows in
      blocks of ``block_rows`` (:mod:`wavediff.inference.streaming`): exact, bounded memory.
      ``block_rows=None`` lets the engine choose for its device.
    """

    kind: ModeKind = "one-pass"
    chunk_samples: int | None = None
    block_rows: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODE_KINDS:
            raise WavediffError(f"engine mode {self.kind!r} is not allowed; choose one of {list(MODE_KINDS)}")
        if self.kind == "chunks":
            if self.chunk_samples is None or self.chunk_samples < 1:
                raise WavediffError(f"chunk_samples={self.chunk_samples} must be >= 1 for chunks")
        elif self.chunk_samples is not None:
            raise WavediffError(f"chunk_samples={self.chunk_samples} is for chunks, not {self.kind}")
        if self.block_rows is not None:
            if self.kind != "stream":
                raise WavediffError(f"block_rows={self.block_rows} is for streaming, not {self.kind}")
            if self.block_rows < 1:
                raise WavediffError(f"block_rows={self.block_rows} must be >= 1")

    @classmethod
    def one_pass(cls) -> "EngineMode":
        return cls("one-pass")

    @classmethod
    def chunks(cls, chunk_samples: int) -> "EngineMode":
        return cls("chunks", chunk_samples=chunk_samples)

    @classmethod
    def stream(cls, block_rows: int | None = None) -> "EngineMode":
        return cls("stream", block_rows=block_rows)

    @property
    def streaming(self) -> bool:
        return self.kind == "stream"

    def __str__(self) -> str:
        if self.kind == "chunks":
            return f"chunks of {self.chunk_samples} samples"
        return "streaming" if self.streaming else "one pass"
