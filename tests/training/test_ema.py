"""wavediff.training.ema: the moving average against its closed form, with the warm-up decay."""
from __future__ import annotations

import torch
from torch import nn

from wavediff.training.ema import ExponentialMovingAverage


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_two_updates_follow_the_closed_form_with_the_warm_up_decay():
    model = nn.BatchNorm1d(3)               # float weights and an integer buffer (num_batches_tracked)
    _set(model, 1.0)
    ema = ExponentialMovingAverage(model, decay=0.9)
    _set(model, 3.0)
    model.num_batches_tracked.fill_(5)
    ema.update(model)
    d1 = 2 / 11                              # min(0.9, (1 + 1) / (10 + 1))
    want = d1 * 1.0 + (1 - d1) * 3.0
    torch.testing.assert_close(ema.shadow["weight"], torch.full((3,), want))
    assert int(ema.shadow["num_batches_tracked"]) == 5          # integer buffers are copied, not averaged
    _set(model, -1.0)
    ema.update(model)
    d2 = 3 / 12
    torch.testing.assert_close(ema.shadow["bias"], torch.full((3,), d2 * want + (1 - d2) * -1.0))


def test_the_decay_reaches_its_setting_after_the_warm_up():
    model = nn.Linear(1, 1, bias=False)
    _set(model, 0.0)
    ema = ExponentialMovingAverage(model, decay=0.5)
    ema.num_updates = 100                    # (1 + 101) / (10 + 101) > 0.5: the setting applies
    _set(model, 1.0)
    ema.update(model)
    assert float(ema.shadow["weight"]) == 0.5


def test_state_dict_is_a_copy_and_loading_restores_the_count():
    model = nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model, decay=0.99)
    state = ema.state_dict()
    state["weight"].fill_(7.0)
    assert not bool((ema.shadow["weight"] == 7.0).any())
    other = ExponentialMovingAverage(nn.Linear(2, 2), decay=0.99)
    other.load_state_dict(state, num_updates=42)
    assert other.num_updates == 42 and bool((other.shadow["weight"] == 7.0).all())
