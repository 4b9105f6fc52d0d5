"""Native CPU kernels for the engine's elementwise work, built on first use and cached.

torch runs a DiffWave layer's gate as two passes over the conv output (``sigmoid_``, then
``addcmul``) and quantizes an int8 conv input in three (``float()``, ``aminmax``,
``quantize_per_tensor``). :file:`kernels.c` does each in one pass with a vectorised
sigmoid; on the 2-core development machine that is most of a layer's non-GEMM time (see
docs/results.md, "Vocoding speed", for the measured gain). For int8 the gate also writes its output
as uint8 levels for the int8 projections, and one kernel adds the projection's two halves
into the residual stream and the skip sum. Two more serve training
(:mod:`wavediff.models.diffwave.fused`): the bf16 gate with its sigmoid and tanh halves kept for the
backward pass, and the gate's adjoint with the bias gradient summed in the same pass.

The C file is compiled once per machine with the system C compiler (``$CC``, else ``cc``
or ``gcc``; ``-O3 -march=native -fopenmp``) into ``$WAVEDIFF_CACHE`` (default
``~/.cache/wavediff``), in a file named by a hash of the source, the flags, the compiler
and the CPU, and loaded with :mod:`ctypes`. OpenMP binds to the ``libgomp.so.1`` torch has
already loaded, so ``torch.set_num_threads`` governs it too.

Everything here is optional: with no compiler, a failed build, a non-x86/Linux system or
``WAVEDIFF_NATIVE=0``, :func:`load` returns ``None`` (logged once) and the engine uses torch
operations (for int8, with its residual and skip projections in bf16). The kernels are tested
against closed forms and torch's own quantization.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import torch

log = logging.getLogger(__name__)

FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC"]


def cache_dir() -> Path:
    """Where built kernels are kept: ``$WAVEDIFF_CACHE``, else ``$XDG_CACHE_HOME/wavediff``
    or ``~/.cache/wavediff``."""
    if os.environ.get("WAVEDIFF_CACHE"):
        return Path(os.environ["WAVEDIFF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wavediff"


def _compiler() -> str | None:
    for name in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler: str) -> str:
    """``compiler --version`` (part of a built library's cache key), asked once per process."""
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


class NativeKernels:
    """The loaded library with typed wrappers taking tensors."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        p, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
        lib.wd_gate_bf16.argtypes = [p, p, p, i64, p, p, f32, i64, i64, f32]
        lib.wd_gate_bf16.restype = None
        lib.wd_gate_f32.argtypes = [p, p, i64, i64, f32]
        lib.wd_gate_f32.restype = None
        lib.wd_residual_skip_bf16.argtypes = [p, i64, p, p, i64, i64, i64, i64, p, p, i64, ctypes.c_int]
        lib.wd_residual_skip_bf16.restype = None
        lib.wd_absmax_bf16.argtypes = [p, i64]
        lib.wd_absmax_bf16.restype = f32
        lib.wd_quantize_bf16_u8.argtypes = [p, p, i64, f32, f32]
        lib.wd_quantize_bf16_u8.restype = None
        lib.wd_train_gate_fwd_bf16.argtypes = [p, p, i64, p, p, i64, i64]
        lib.wd_train_gate_fwd_bf16.restype = None
        lib.wd_train_gate_bwd_bf16.argtypes = [p, p, p, p, p, i64, i64, i64]
        lib.wd_train_gate_bwd_bf16.restype = None
        lib.wd_vectorized.argtypes = []
        lib.wd_vectorized.restype = ctypes.c_int
        self.vectorized = bool(lib.wd_vectorized())
        self.lib = lib
        self.path = path

    def gate(self, y: torch.Tensor, out: torch.Tensor, value: float,
             cond: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
             quantize_scale: float | None = None) -> torch.Tensor:
        """``out (n, C) = a + value * a * b``, ``a, b = sigmoid(u[:, :C]), sigmoid(u[:, C:])``,
        ``u = y + cond`` (``u = y`` without ``cond``), for contiguous CPU ``y (n, 2C)`` in bf16
        or fp32 (``cond`` in bf16 only). ``cond`` may be two contiguous pieces whose rows follow
        each other. ``out`` has ``y``'s dtype, or, with ``quantize_scale`` (bf16 only), is uint8:
        ``clamp(rint(g / quantize_scale) + 128, 0, 255)`` of the float32 value ``g``."""
        n, c2 = y.shape
        want = torch.uint8 if quantize_scale is not None else y.dtype
        if not (y.is_contiguous() and out.is_contiguous() and out.dtype == want and out.shape == (n, c2 // 2)):
            raise ValueError(f"gate: y {tuple(y.shape)} {y.dtype} and out {tuple(out.shape)} {out.dtype} "
                             f"must be contiguous (n, 2C) and (n, C) {want}")
        if y.dtype == torch.bfloat16:
            pieces = () if cond is None else (cond,) if isinstance(cond, torch.Tensor) else tuple(cond)
            if pieces and not (all(c.is_contiguous() and c.dtype == y.dtype and c.shape[1:] == y.shape[1:]
                                   for c in pieces) and sum(c.shape[0] for c in pieces) == n):
                raise ValueError(f"gate: cond {[tuple(c.shape) for c in pieces]} must be contiguous rows like y "
                                 f"{tuple(y.shape)}, {n} in all")
            first = pieces[0] if pieces else None
            rest = pieces[1] if len(pieces) > 1 else first
            quantized = quantize_scale is not None
            self.lib.wd_gate_bf16(y.data_ptr(), None if first is None else first.data_ptr(),
                                  None if rest is None else rest.data_ptr(), n if first is None else first.shape[0],
                                  None if quantized else out.data_ptr(), out.data_ptr() if quantized else None,
                                  quantize_scale if quantized else 1.0, n, c2 // 2, value)
        elif y.dtype == torch.float32 and cond is None and quantize_scale is None:
            self.lib.wd_gate_f32(y.data_ptr(), out.data_ptr(), n, c2 // 2, value)
        else:
            raise ValueError(f"gate: dtype {y.dtype} (cond {'given' if cond is not None else 'none'}, "
                             f"quantize_scale {quantize_scale}) is not one of bf16 with or without cond and "
                             "quantize_scale, fp32 without")
        return out

    def train_gate_forward(self, pre: torch.Tensor, bias: torch.Tensor, gates: torch.Tensor,
                           h: torch.Tensor) -> None:
        """Training gate: ``u = pre (n, 2C) + bias (items, 2C)`` (row i takes bias row
        ``i // (n / items)``), ``gates = [sigmoid(u[:, :C]) | tanh(u[:, C:])]`` ``(n, 2C)`` and
        ``h = sigmoid * tanh`` ``(n, C)``; ``pre``, ``gates``, ``h`` contiguous bf16, ``bias`` float32."""
        n, c2 = pre.shape
        items = bias.shape[0]
        if not (all(t.is_contiguous() and t.dtype == torch.bfloat16 for t in (pre, gates, h))
                and bias.is_contiguous() and bias.dtype == torch.float32 and bias.shape == (items, c2)
                and gates.shape == (n, c2) and h.shape == (n, c2 // 2) and items > 0 and n % items == 0):
            raise ValueError(f"train_gate_forward: pre {tuple(pre.shape)} {pre.dtype}, bias {tuple(bias.shape)} "
                             f"{bias.dtype}, gates {tuple(gates.shape)}, h {tuple(h.shape)} must be contiguous "
                             "bf16 (n, 2C), float32 (items, 2C) with items dividing n, bf16 (n, 2C), bf16 (n, C)")
        self.lib.wd_train_gate_fwd_bf16(pre.data_ptr(), bias.data_ptr(), n // items, gates.data_ptr(),
                                        h.data_ptr(), n, c2 // 2)

    def train_gate_backward(self, g_h: torch.Tensor, gates: torch.Tensor, g_pre: torch.Tensor,
                            bias_grad: torch.Tensor) -> None:
        """The gate's adjoint: ``g_pre = [g_h t s (1 - s) | g_h s (1 - t^2)]`` for ``gates = [s | t]``,
        and ``bias_grad (items, 2C)`` float32 = each item's column sums of ``g_pre`` (its
        ``n / items`` consecutive rows)."""
        n, c2 = gates.shape
        items = bias_grad.shape[0]
        if not (all(t.is_contiguous() and t.dtype == torch.bfloat16 for t in (g_h, gates, g_pre))
                and g_h.shape == (n, c2 // 2) and g_pre.shape == (n, c2) and bias_grad.is_contiguous()
                and bias_grad.dtype == torch.float32 and bias_grad.shape == (items, c2) and items > 0
                and n % items == 0):
            raise ValueError(f"train_gate_backward: g_h {tuple(g_h.shape)}, gates {tuple(gates.shape)}, g_pre "
                             f"{tuple(g_pre.shape)}, bias_grad {tuple(bias_grad.shape)} must be contiguous bf16 "
                             "(n, C), (n, 2C), (n, 2C) and float32 (items, 2C) with items dividing n")
        per_item = -(-(n // items) // 512)
        scratch = torch.empty(items * per_item, c2, dtype=torch.float32)
        self.lib.wd_train_gate_bwd_bf16(g_h.data_ptr(), gates.data_ptr(), g_pre.data_ptr(), bias_grad.data_ptr(),
                                        scratch.data_ptr(), n, c2 // 2, n // items)

    def residual_skip(self, y: torch.Tensor, residual: tuple[torch.Tensor, torch.Tensor] | None,
                      skip: torch.Tensor | tuple[torch.Tensor, torch.Tensor], rows: tuple[int, int],
                      accumulate: bool) -> None:
        """The residual and skip updates of one projection ``y (n, W)`` (bf16, contiguous): with
        ``residual = (current, next)`` (each ``(n, C)``, contiguous, ``W = 2C``),
        ``next = current + y[:, :C]``; and ``skip (+)= y[s0:s1, W - C:]`` for ``rows = (s0, s1)``,
        where ``skip`` is one ``(s1 - s0, C)`` tensor or two whose rows follow each other
        (added when ``accumulate``, else stored). Sums in float32, rounded once."""
        n, width = y.shape
        s0, s1 = rows
        pieces = (skip,) if isinstance(skip, torch.Tensor) else tuple(skip)
        C = pieces[0].shape[1] if pieces else 0
        tensors = [y, *pieces, *(residual or ())]
        if not (all(t.is_contiguous() and t.dtype == torch.bfloat16 for t in tensors) and 0 <= s0 <= s1 <= n
                and all(p.dim() == 2 and p.shape[1] == C for p in pieces) and sum(p.shape[0] for p in pieces) == s1 - s0
                and width == (2 * C if residual is not None else C)
                and (residual is None or all(t.shape == (n, C) for t in residual))):
            raise ValueError(f"residual_skip: y {tuple(y.shape)}, residual "
                             f"{None if residual is None else [tuple(t.shape) for t in residual]}, skip "
                             f"{[tuple(p.shape) for p in pieces]} and rows {rows} must be contiguous bf16 with "
                             "y (n, 2C) (or (n, C) without residual), residual (n, C) each, skip (s1 - s0, C) "
                             "in all, 0 <= s0 <= s1 <= n")
        first = pieces[0]
        rest = pieces[1] if len(pieces) > 1 else first
        current, nxt = residual if residual is not None else (None, None)
        self.lib.wd_residual_skip_bf16(y.data_ptr(), width, None if current is None else current.data_ptr(),
                                       None if nxt is None else nxt.data_ptr(), n, C, s0, s1, first.data_ptr(),
                                       rest.data_ptr(), first.shape[0], int(accumulate))

    def quantize(self, x: torch.Tensor, out: torch.Tensor, zero_point: int) -> float:
        """Quantize contiguous bf16 ``x`` into uint8 ``out`` (same shape) with scale
        ``max|x| / 127`` (at least 1e-12 / 127) around ``zero_point``; returns the scale."""
        if not (x.is_contiguous() and out.is_contiguous() and x.dtype == torch.bfloat16 and out.dtype == torch.uint8
                and out.shape == x.shape):
            raise ValueError(f"quantize: x {tuple(x.shape)} {x.dtype} must be contiguous bf16 and out "
                             f"{tuple(out.shape)} {out.dtype} contiguous uint8 of the same shape")
        n = x.numel()
        scale = max(float(self.lib.wd_absmax_bf16(x.data_ptr(), n)), 1e-12) / 127.0
        self.lib.wd_quantize_bf16_u8(x.data_ptr(), out.data_ptr(), n, scale, float(zero_point))
        return scale


def _build(source: bytes, target: Path, compiler: str, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / name
        src.write_bytes(source)
        out = Path(tmp) / target.name
        done = subprocess.run([compiler, *FLAGS, str(src), "-o", str(out), "-lm"], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
        os.replace(out, target)   # atomic: concurrent builders each write their own temporary


def build_library(name: str) -> Path | None:
    """The shared library built from the C file ``name`` of this package (cached, see the module
    doc), or ``None`` where native code is off or cannot be built (the reason is logged)."""
    if os.environ.get("WAVEDIFF_NATIVE", "1") == "0":
        log.info("native kernels disabled (WAVEDIFF_NATIVE=0); using torch operations")
        return None
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        log.info("native kernels are built on x86-64 Linux only (this is %s %s); using torch operations",
                 platform.system(), platform.machine())
        return None
    compiler = _compiler()
    if compiler is None:
        log.info("no C compiler found ($CC, cc, gcc, clang); using torch operations (slower)")
        return None
    source = resources.files("wavediff.inference").joinpath(name).read_bytes()
    parts = [source, " ".join(FLAGS).encode(), compiler.encode(), _compiler_version(compiler).encode(),
             _cpu_signature().encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    target = cache_dir() / f"{Path(name).stem}-{key}.so"
    try:
        if not target.exists():
            log.info("building native kernels into %s", target)
            _build(source, target, compiler, name)
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        log.warning("native kernels from %s unavailable (%s); using torch operations", name, err)
        return None
    return target


@functools.lru_cache(maxsize=1)
def load() -> NativeKernels | None:
    """The native kernels, built if needed; ``None`` where they cannot be had (see module doc)."""
    target = build_library("kernels.c")
    if target is None:
        return None
    try:
        kernels = NativeKernels(target)
    except OSError as err:
        log.warning("native kernels unavailable (%s); using torch operations", err)
        return None
    if not kernels.vectorized:   # the scalar fallbacks are slower than torch's vectorised operations
        log.info("this CPU has no AVX-512 for the native kernels; using torch operations")
        return None
    return kernels
