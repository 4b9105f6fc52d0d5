"""wavediff.data.sampling: each global batch split between ranks; batch sizes that cannot be split
are refused."""
from __future__ import annotations

import pytest

from wavediff.data.sampling import StepSampler, epoch_order, item_seed
from wavediff.errors import WavediffError
from wavediff.training.trainer import _micro_batches


def test_the_sampler_splits_each_global_batch_between_ranks():
    n, batch, seed = 23, 8, 5
    one = StepSampler(n, batch, seed=seed)
    ranks = [StepSampler(n, batch, num_replicas=2, rank=r, seed=seed) for r in range(2)]
    for epoch in (0, 3):
        for s in [one, *ranks]:
            s.set_epoch(epoch)
        whole = list(one)
        order = epoch_order(n, batch, seed, epoch)
        assert whole == [(int(order[p]), item_seed(seed, epoch, p)) for p in range(len(whole))]
        assert len(whole) == len(one) == (n // batch) * batch
        parts = [list(s) for s in ranks]
        assert all(len(p) == len(s) == len(whole) // 2 for p, s in zip(parts, ranks))
        for step in range(n // batch):                       # together the ranks take exactly step's batch
            mine = [x for p, r in zip(parts, ranks) for x in p[step * 4:(step + 1) * 4]]
            assert sorted(mine) == sorted(whole[step * batch:(step + 1) * batch])
    one.set_epoch(1)
    first = list(one)
    one.set_start_step(1)                                    # a resumed epoch: the same order, later
    assert list(one) == first[batch:]
    one.set_epoch(2)
    one.set_start_step(0)
    assert [i for i, _ in list(one)] != [i for i, _ in first]  # set_epoch reshuffles
    tiny = StepSampler(3, 8, seed=0)                           # fewer items than a batch: repeated
    assert len(list(tiny)) == 8 and {i for i, _ in tiny} == {0, 1, 2}


def test_batch_sizes_that_cannot_be_split_are_refused():
    assert _micro_batches(16, 0, 4) == (1, 4)
    assert _micro_batches(16, 2, 4) == (2, 2)
    assert _micro_batches(16, 1, 1) == (16, 1)
    with pytest.raises(WavediffError, match="divisible by the number of processes"):
        _micro_batches(10, 0, 4)
    with pytest.raises(WavediffError, match="micro_batch_size=3 must divide"):
        _micro_batches(16, 3, 2)
    with pytest.raises(WavediffError, match="not divisible"):
        StepSampler(10, 6, num_replicas=4, rank=0)
