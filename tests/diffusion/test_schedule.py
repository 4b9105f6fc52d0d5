"""wavediff.diffusion.schedule: the linear schedule, the fast schedule aligned to the paper's
numbers, the reverse steps in sampling order and the chain each step count selects."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.diffusion import align_schedule, full_chain, linear_schedule, sampling_schedule
from wavediff.errors import WavediffError

from helpers import BASE_ETAS


LARGE_ETAS = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7]


def test_linear_schedule_closed_form():
    s = linear_schedule(50, 1e-4, 0.05)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.05)
    expected = math.prod(1 - (1e-4 + (0.05 - 1e-4) * i / 49) for i in range(50))
    assert s.alphas_cumprod[-1].item() == pytest.approx(expected, rel=1e-12)
    assert s.alphas_cumprod[-1].item() == pytest.approx(0.280, abs=1e-3)  # paper notes
    assert linear_schedule(200, 1e-4, 0.02).alphas_cumprod[-1].item() == pytest.approx(0.132, abs=1e-3)


def test_fast_schedule_alignment_matches_the_paper():
    base = align_schedule(linear_schedule(50, 1e-4, 0.05), BASE_ETAS).timesteps.tolist()
    for got, want in zip(base, [0, 0.894, 4.087, 10.45, 22.99, 42.92]):
        assert got == pytest.approx(want, abs=0.01)
    large = align_schedule(linear_schedule(200, 1e-4, 0.02), LARGE_ETAS).timesteps.tolist()
    for got, want in zip(large, [0, 3.201, 13.43, 33.82, 73.98, 170.61]):
        assert got == pytest.approx(want, abs=0.01)


def test_alignment_interpolates_sqrt_alphas_cumprod_exactly():
    s = linear_schedule(50, 1e-4, 0.05)
    chain = align_schedule(s, BASE_ETAS)
    torch.testing.assert_close(s.sqrt_alphas_cumprod_at(chain.timesteps), chain.alphas_cumprod.sqrt())


def test_unalignable_schedules_are_rejected_with_a_reason():
    s = linear_schedule(50, 1e-4, 0.05)
    with pytest.raises(WavediffError, match="below alpha-bar_T"):
        align_schedule(s, [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7])  # the LARGE schedule on BASE's chain
    with pytest.raises(WavediffError, match="less noise"):
        align_schedule(s, [1e-5, 0.5])
    with pytest.raises(WavediffError, match=r"\(0, 1\)"):
        align_schedule(s, [0.1, 1.5])


def test_reverse_steps_are_the_paper_update_in_sampling_order():
    """Each reverse step's coefficients against Algorithm 2 written out from the betas."""
    betas = [1e-4 + (0.05 - 1e-4) * i / 49 for i in range(50)]
    chain = full_chain(linear_schedule(50, 1e-4, 0.05))
    steps = chain.reverse_steps()
    assert [st.number for st in steps] == list(range(50, 0, -1))
    assert [st.adds_noise for st in steps] == [True] * 49 + [False]
    for st in steps:
        t = st.index
        abar = math.prod(1 - b for b in betas[:t + 1])
        abar_prev = math.prod(1 - b for b in betas[:t])
        assert st.t == t
        scale = 1 / math.sqrt(1 - betas[t])
        assert st.x_coef == pytest.approx(scale, rel=1e-9)
        assert st.eps_coef == pytest.approx(-betas[t] / math.sqrt(1 - abar) * scale, rel=1e-9)
        assert st.prev_coef == 0 and not st.keeps_x0
        assert st.sigma == pytest.approx(math.sqrt((1 - abar_prev) / (1 - abar) * betas[t]), rel=1e-9, abs=1e-12)
    x, eps = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    top = steps[0]
    expected = (x - betas[49] / math.sqrt(1 - math.prod(1 - b for b in betas)) * eps) / math.sqrt(1 - betas[49])
    torch.testing.assert_close(top.mean(x, eps), expected)
    y = x.clone()
    assert top.mean_(y, eps) is y
    torch.testing.assert_close(y, expected)


def test_steps_select_the_chain():
    s = linear_schedule(50, 1e-4, 0.05)
    assert sampling_schedule(s, 50, BASE_ETAS).num_steps == 50
    assert sampling_schedule(s, 6, BASE_ETAS).timesteps[1].item() == pytest.approx(0.894, abs=1e-3)
    strided = sampling_schedule(s, 10, BASE_ETAS)
    assert strided.num_steps == 10 and strided.timesteps[-1].item() == 49
    torch.testing.assert_close(strided.alphas_cumprod, s.alphas_cumprod[strided.timesteps.long()])
    with pytest.raises(WavediffError, match="1..50"):
        sampling_schedule(s, 51, BASE_ETAS)
