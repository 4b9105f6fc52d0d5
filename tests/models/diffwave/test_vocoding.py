"""wavediff.models.diffwave.vocoding: the chain each request selects, the vocoder's settings
checked with their names, and GLA-Grad's correction applied at the noisiest steps only."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from wavediff.config import SamplerConfig
from wavediff.diffusion.schedule import align_schedule, linear_schedule
from wavediff.errors import WavediffError
from wavediff.models.diffwave import build_model
from wavediff.models.diffwave.vocoding import DiffWaveVocoding, consistency_step, describe_chain, reverse_chain


def test_the_chain_is_the_fast_schedule_the_full_chain_or_the_given_variances(micro_config):
    d = micro_config.diffusion
    T = d.num_steps
    fast = reverse_chain(micro_config, len(d.fast_schedule))
    expected = align_schedule(linear_schedule(T, d.beta_start, d.beta_end), d.fast_schedule)
    torch.testing.assert_close(fast.timesteps, expected.timesteps)
    full = reverse_chain(micro_config, T)
    assert full.timesteps.tolist() == list(range(T))
    etas = [1e-4, 0.05, 0.5]
    given = reverse_chain(micro_config, 6, etas)              # variances win over the step count
    assert given.num_steps == 3 and given.etas.tolist() == pytest.approx(etas)
    with pytest.raises(WavediffError, match=f"1..{T}"):
        reverse_chain(micro_config, T + 1)


def test_the_chain_is_described_by_its_source_and_variances(micro_config):
    d = micro_config.diffusion
    T, fast = d.num_steps, d.fast_schedule
    assert describe_chain(micro_config, len(fast)) == (
        f"{len(fast)} steps, diffusion.fast_schedule (aligned, Appendix B), eta "
        + ", ".join(f"{e:.4g}" for e in fast))
    assert describe_chain(micro_config, T) == f"{T} steps, the full chain (T = {T})"
    assert describe_chain(micro_config, 2).startswith(f"2 steps, strided over the T = {T} training steps, eta ")
    searched = replace(micro_config, diffusion=replace(d, schedules=((0.01, 0.25, 0.2),)))
    assert describe_chain(searched, 3) == "3 steps, diffusion.schedules (aligned, Appendix B), eta 0.01, 0.25, 0.2"
    assert describe_chain(searched, 6, [1e-4, 0.5]) == "2 steps, given etas (aligned, Appendix B), eta 0.0001, 0.5"
    levels = replace(searched, diffusion=replace(searched.diffusion, noise_input="level"))
    assert describe_chain(levels, 3) == "3 steps, diffusion.schedules (at its noise levels), eta 0.01, 0.25, 0.2"


@pytest.mark.parametrize("kwargs, match", [
    ({"chunk_seconds": "windows"}, "chunk_seconds='windows' is not allowed"),
    ({"chunk_seconds": 0.0}, "chunk_seconds=0.0 must be > 0"),
    ({"max_memory_gb": 0.0}, "max_memory_gb=0.0 must be > 0"),
])
def test_bad_settings_are_refused_by_name(micro_config, kwargs, match):
    settings = {"precision": "fp32", "weights": "float", "chunk_seconds": "auto", "max_memory_gb": 1.0, **kwargs}
    with pytest.raises(WavediffError, match=match):
        DiffWaveVocoding(build_model(micro_config), micro_config, torch.device("cpu"), **settings)


def test_the_consistency_step_corrects_the_noisiest_steps_only():
    calls = []

    def projection(x, iters):
        calls.append(iters)
        return -x

    sampler = SamplerConfig(consistency="griffin-lim", consistency_steps=2, consistency_iters=5)
    correct = consistency_step(projection, 6, sampler)
    x0 = torch.ones(1, 8)
    out = {step: correct(step, x0) for step in range(1, 7)}     # 1-based steps, 6 the noisiest
    assert [s for s, v in out.items() if v is not None] == [5, 6]
    assert torch.equal(out[6], -x0) and out[6].shape == x0.shape and calls == [5, 5]
