"""Reusable activation buffers, mapped with their pages populated up front.

Every large fresh allocation is memory the kernel must fault in and zero page by page:
measured on the 2-core development machine, first-touching a fresh 3.4 GB mapping took
4.5 s, while mapping it with ``MAP_POPULATE`` (the kernel fills every page in one call)
took 0.95 s and touching it afterwards 0.07 s. The engine therefore takes its big
buffers from a :class:`Workspace`, which maps them that way on Linux (with
``MADV_HUGEPAGE`` advice where offered; ``torch.empty`` elsewhere and on other devices),
and hands the same memory back on the next call when it is large enough.
"""
from __future__ import annotations

import mmap
from typing import Any

import torch

HUGE_PAGE_MIN_BYTES = 2 * 2 ** 20


def _mapped_empty(numel: int, dtype: torch.dtype) -> tuple[torch.Tensor, Any]:
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if nbytes < HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(numel, dtype=dtype), None
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    try:
        region = mmap.mmap(-1, nbytes, flags=flags)
        region.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, ValueError, AttributeError):
        return torch.empty(numel, dtype=dtype), None
    return torch.frombuffer(region, dtype=dtype, count=numel), region


class Workspace:
    """Named flat buffers that grow on demand and are reused across calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: dict[str, tuple[torch.Tensor, Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, zero: bool = False) -> torch.Tensor:
        """A ``shape`` view of buffer ``name`` (contents undefined unless ``zero``)."""
        numel = 1
        for n in shape:
            numel *= n
        held = self._buffers.get(name)
        if held is None or held[0].numel() < numel or held[0].dtype != dtype:
            self._buffers.pop(name, None)
            if self.device.type == "cpu":
                held = _mapped_empty(max(numel, 1), dtype)
            else:
                held = (torch.empty(max(numel, 1), dtype=dtype, device=self.device), None)
            self._buffers[name] = held
        view = held[0][:numel].view(shape)
        if zero:
            view.zero_()
        return view

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t, _ in self._buffers.values())

    def release(self) -> None:
        """Drop every buffer (the next call allocates afresh)."""
        self._buffers.clear()
