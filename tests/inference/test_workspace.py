"""wavediff.inference.workspace: buffers arrive with their pages in place (counted with getrusage's
minor page faults), and under the allocator policy large blocks come from glibc's kept heap."""
from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest
import torch

from wavediff.inference.workspace import HUGE_PAGE_MIN_BYTES, Workspace


linux = pytest.mark.skipif(platform.system() != "Linux", reason="page-fault accounting and mmap advice are Linux's")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


_HEAP_PROBE = """
import sys, torch
from wavediff.inference.workspace import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
block = torch.empty(2 ** 21, dtype=torch.float32)   # 8 MB
block2 = torch.empty(2 ** 21, dtype=torch.float32)
heap = [line.split()[0].split("-") for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
lo, hi = int(heap[0][0], 16), int(heap[0][1], 16)
print("APPLIED", applied, "IN_HEAP", all(lo <= t.data_ptr() < hi for t in (block, block2)))
"""


@linux
def test_large_buffers_are_populated_when_mapped():
    ws = Workspace(torch.device("cpu"))
    buf = ws.get("big", (8 * 2 ** 20,), torch.float32)        # 32 MB: 8192 pages of 4 kB
    before = _faults()
    buf.fill_(1.0)
    assert _faults() - before < 200                          # no page left to fault in
    assert float(buf.sum()) == buf.numel()
    small = ws.get("small", (16,), torch.float32, zero=True)  # under HUGE_PAGE_MIN_BYTES: plain torch.empty
    assert small.numel() * 4 < HUGE_PAGE_MIN_BYTES and bool((small == 0).all())
    again = ws.get("big", (1000, 64), torch.float32)          # smaller: the same memory, reshaped
    assert again.data_ptr() == buf.data_ptr()


@linux
def test_blocks_under_32_mb_come_from_the_kept_heap():
    """glibc maps an 8 MB block by itself (mmap, returned on free: fresh pages every time);
    under the policy it comes from the heap, whose freed memory is kept."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: the C allocator's policy is left as it is")
    runs = {how: subprocess.run([sys.executable, "-c", _HEAP_PROBE, how], capture_output=True, text=True,
                                timeout=120) for how in ("default", "keep")}
    assert "APPLIED None IN_HEAP False" in runs["default"].stdout, runs["default"].stderr
    assert "APPLIED True IN_HEAP True" in runs["keep"].stdout, runs["keep"].stderr
