"""Which item goes into which global batch, and the seed of each item's random draws.

The global batch of optimiser step ``n`` is fixed by ``(seed, n)`` alone, whatever the
number of processes: epoch ``e = n // steps_per_epoch`` shuffles the training items with a
generator seeded by ``(seed, e)``, and step ``n`` takes the next ``batch_size`` of them
(slots ``p``). Each slot also gets its own seed, ``item_seed(seed, e, p)``, from which the
item's crop, diffusion step, noise and label dropout are drawn. So

- a run resumed at step ``n`` reads the same items with the same randomness as the run
  that was interrupted (the data order is restored from ``n``), and
- ``W`` processes that each take every ``W``-th slot of the global batch see, together,
  exactly the items and draws of one process taking all of them: only the order of the
  floating-point sums differs.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

from wavediff.errors import WavediffError

_MASK = 0xFFFFFFFFFFFFFFFF


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x ^= (p + 0x9E3779B97F4A7C15 + ((x << 6) & _MASK) + (x >> 2)) & _MASK
        x = (x * 0xBF58476D1CE4E5B9) & _MASK
    return x & 0x7FFFFFFFFFFFFFFF


def item_seed(seed: int, epoch: int, slot: int) -> int:
    """The seed of the item in ``slot`` of ``epoch``'s shuffled order."""
    return mix_seed(seed, 2, epoch, slot)


def steps_per_epoch(num_items: int, batch_size: int) -> int:
    """Whole global batches per pass over the data (at least 1; the remainder is dropped)."""
    return max(1, num_items // batch_size)


def epoch_order(num_items: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """``(max(N, batch_size·k),)`` item indices of ``epoch``: a permutation of the N items,
    repeated when there are fewer items than one batch."""
    g = torch.Generator().manual_seed(mix_seed(seed, 1, epoch))
    order = torch.randperm(num_items, generator=g)
    if num_items < batch_size:
        order = order.repeat(math.ceil(batch_size / num_items))
    return order


class StepSampler(DistributedSampler):
    """This rank's share of every global batch, as ``(item index, item seed)`` pairs.

    Rank ``r`` of ``W`` takes slots ``r, r + W, r + 2W, …`` of each global batch of
    ``batch_size`` (which ``W`` must divide). Call :meth:`set_epoch` before each epoch, as
    with any ``DistributedSampler``, and :meth:`set_start_step` to begin an epoch part-way
    (a resumed run). A ``DataLoader`` with ``batch_size = batch_size // W // accumulation``
    then yields micro-batches whose pairs a dataset turns into items.
    """

    def __init__(self, num_items: int, batch_size: int, *, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        if num_items < 1:
            raise WavediffError("the sampler has no items")
        if batch_size % num_replicas:
            raise WavediffError(f"train.batch_size={batch_size} is not divisible by the {num_replicas} processes")
        super().__init__(range(num_items), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.num_items = num_items
        self.batch_size = batch_size
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.num_items, self.batch_size)

    def set_start_step(self, step_in_epoch: int) -> None:
        """Skip the first ``step_in_epoch`` global batches of the current epoch."""
        if not 0 <= step_in_epoch < self.steps_per_epoch:
            raise WavediffError(f"step_in_epoch={step_in_epoch} must be in [0, {self.steps_per_epoch})")
        self.start_step = step_in_epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        order = epoch_order(self.num_items, self.batch_size, self.seed, self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            for slot in range(step * self.batch_size + self.rank, (step + 1) * self.batch_size, self.num_replicas):
                yield int(order[slot]), item_seed(self.seed, self.epoch, slot)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * (self.batch_size // self.num_replicas)
