"""Reusable activation buffers, mapped with their pages populated up front, and the
process's allocator told to keep freed memory.

Every large fresh allocation is memory the kernel must fault in and zero page by page:
measured on the 2-core development machine, first-touching a fresh 3.4 GB mapping took
4.5 s, while mapping it with ``MAP_POPULATE`` (the kernel fills every page in one call)
took 0.95 s and touching it afterwards 0.07 s. The engine therefore takes its big buffers
from a :class:`Workspace`, which on Linux advises them ``MADV_HUGEPAGE`` (2 MB pages: fewer
TLB misses in the kernels that stream through them) and populates them in one call with
``MADV_POPULATE_WRITE`` (Linux 5.14; older kernels: touching each page), and hands the same
memory back on the next call when it is large enough; ``torch.empty`` elsewhere and on
other devices. Populating 400 MB that way took 0.31-1.19 s, against 0.46-1.52 s with
``MAP_POPULATE`` and 4 kB pages, in alternating runs: fresh memory is slow on this virtual
machine either way, and its cost varies from run to run.

Operations that return new tensors (oneDNN's int8 conv and GEMM have no ``out=``) take
them from the C allocator. glibc serves blocks of 4 MB either by ``mmap`` or from a heap
whose top it trims back to the system once more than twice the largest freed block is
free, so such blocks are fresh pages again and again: a 20 s ``base`` run made about
120,000 page faults more than with the policy of :func:`keep_freed_memory`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import mmap
import platform
from typing import Any

import torch

log = logging.getLogger(__name__)

HUGE_PAGE_MIN_BYTES = 2 * 2 ** 20
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)   # Linux 5.14; Python 3.11 lacks the name
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                       # glibc's mallopt parameters
MMAP_THRESHOLD_BYTES = 32 * 2 ** 20    # glibc's largest (HEAP_MAX / 2): blocks below come from the heap
TRIM_THRESHOLD_BYTES = 1 << 30         # free heap top kept before glibc gives it back


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks under 32 MB from its heap and keep up to 1 GB of freed heap
    (``mallopt``), so the tensors a run frees are reused rather than faulted in afresh.

    Process-wide and done once (the engine calls it on CPU); memory a run freed stays with
    the process for the next one, as with tcmalloc or jemalloc. Returns whether it was
    applied (glibc on Linux only)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and \
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError):
        return False
    if done:
        log.debug("glibc malloc: blocks under %d bytes from the heap, up to %d free bytes kept",
                  MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES)
    return done


def _mapped_empty(numel: int, dtype: torch.dtype) -> tuple[torch.Tensor, Any]:
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if nbytes < HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(numel, dtype=dtype), None
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, ValueError, AttributeError):
        return torch.empty(numel, dtype=dtype), None
    tensor = torch.frombuffer(region, dtype=dtype, count=numel)
    try:
        region.madvise(MADV_POPULATE_WRITE)   # every page in one call
    except OSError:
        tensor.view(torch.uint8)[::4096].zero_()   # older kernels: touch each (huge) page
    return tensor, region


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
