"""torch.distributed set-up for training under ``torchrun``: ranks, devices, collectives.

A process started by ``torchrun`` finds ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment; :func:`init_distributed` reads them,
picks the device (``cuda:LOCAL_RANK`` on GPUs, else the CPU) and the backend (NCCL on CUDA,
gloo on CPU) and joins the process group. A plain ``python -m wavediff train`` has none of
those variables and runs as a group of one, without torch.distributed.

Everything here is a thin, explicit wrapper: the trainer calls :meth:`DistributedContext.all_reduce_sum`
and friends, which are no-ops (or identities) for a single process.
"""
from __future__ import annotations

import datetime
import gc
import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist

from wavediff.devices import pick_device
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the group.

    ``rank`` is global (0 … world_size-1); ``local_rank`` counts processes on this machine
    and picks its GPU. Rank 0 is the one that logs, writes checkpoints and validates.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when torch.distributed is initialised for this group (more than one process)."""
        return self.backend is not None

    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``values`` over all ranks (a copy; float64 on return)."""
        out = values.detach().to(self.device, torch.float64).clone()
        if self.enabled:
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.cpu()

    def all_reduce_max(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise maximum of integer ``values`` over all ranks (int64 on return)."""
        out = values.detach().to(self.device, torch.int64).clone()
        if self.enabled:
            dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return out.cpu()

    def all_gather(self, values: torch.Tensor) -> torch.Tensor:
        """``(world_size, *values.shape)``: every rank's ``values`` (same shape and dtype on all)."""
        if not self.enabled:
            return values.detach().cpu().unsqueeze(0)
        local = values.detach().to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local)
        return torch.stack([p.cpu() for p in parts])

    def shutdown(self) -> None:
        """Leave the group while Python is fully alive (drop the trainer, and so its DDP
        wrapper, first; the garbage collection here frees any cycle that still holds the group).

        This does not make a normal interpreter exit safe on CPU: once a DDP wrapper has been
        built, gloo's worker threads (``pt_gloo_runloop``) outlive ``destroy_process_group``
        (measured: with torch 2.13 they are joined after plain collectives, not after DDP). A
        worker that frees a finished collective's tensors while the interpreter finalises needs
        the GIL, and the process aborts with ``terminate called without an active exception``.
        End such a process with :func:`end_process`, as ``wavediff train`` does."""
        if self.enabled and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()
            gc.collect()


def end_process(code: int) -> NoReturn:
    """End this process now with exit status ``code``, after flushing the logs and the standard
    streams, without interpreter finalisation: the way out of a process that was in a gloo
    group with DDP (see :meth:`DistributedContext.shutdown`). Everything the run keeps must be
    written and closed before (the trainer closes its logs; checkpoints are written atomically)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # closed or broken: nothing left to save
            pass
    os._exit(code)


def launched_by_torchrun() -> bool:
    """True when the environment holds torchrun's rank variables."""
    return all(v in os.environ for v in ENV_VARS)


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise WavediffError(f"environment variable {name}={raw!r} must be an integer (set by torchrun)") from None


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistributedContext:
    """Join the torchrun group if there is one; otherwise a single-process context.

    Args:
        device: ``auto`` (CUDA if present), ``cpu``, ``cuda``; under torchrun ``cuda`` means
            ``cuda:LOCAL_RANK`` and an explicit ``cuda:N`` is refused (each process owns one GPU).
        timeout_minutes: how long a collective may wait for a slow rank (validation and
            checkpoints run on rank 0 while the others wait in the next step).
    """
    if not launched_by_torchrun() or _env_int("WORLD_SIZE") == 1:
        return DistributedContext(device=pick_device(device))
    rank, local_rank, world = _env_int("RANK"), _env_int("LOCAL_RANK"), _env_int("WORLD_SIZE")
    if not 0 <= rank < world:
        raise WavediffError(f"RANK={rank} must be in [0, WORLD_SIZE={world})")
    base = pick_device(device if device != "auto" else "auto")
    if base.type == "cuda":
        if device not in ("auto", "cuda"):
            raise WavediffError(f"--device={device!r} is not allowed under torchrun; use 'cuda' (each process takes "
                                "cuda:LOCAL_RANK) or 'cpu'")
        if local_rank >= torch.cuda.device_count():
            raise WavediffError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPU(s); "
                                "start at most one process per GPU (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
    log.info("rank %d of %d (local rank %d) on %s, backend %s", rank, world, local_rank, dev, backend)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world, device=dev, backend=backend)


def configure_rank_logging(rank: int) -> None:
    """Rank 0 logs as usual; other ranks keep warnings and errors only, prefixed with their rank."""
    if rank == 0:
        return
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(f"[rank {rank}] %(asctime)s %(levelname)s %(name)s: %(message)s",
                                               datefmt="%H:%M:%S"))
