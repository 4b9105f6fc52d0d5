"""wavediff.inference.planning: the engine mode and conditioner cache chosen from the memory budget."""
from __future__ import annotations

import torch

from wavediff.inference.planning import engine_mode, one_pass_bytes
from wavediff.inference import EngineMode, InferenceEngine
from wavediff.pipelines import Vocoder

from helpers import SR, fast_chain, reference_vocode


def test_auto_chunking_follows_the_memory_budget(random_vocoder):
    cfg, model, _ = random_vocoder
    vocoder = Vocoder(model, cfg, precision="fp32", max_memory_gb=0.02)
    need = one_pass_bytes(40 * 256, cfg, "fp32")
    assert need == 40 * 256 * ((6 * 32 + 3 * 16) * 4 + 8)
    assert one_pass_bytes(10 ** 6, cfg, "bf16") == 10 ** 6 * (6 * 32 * 2 + 3 * 16 * 2 + 8)
    assert one_pass_bytes(5 * 10 ** 6, cfg, "bf16") == 5 * 10 ** 6 * (80 * 2 + 3 * 16 * 2 + 8)   # mel, not projections
    assert one_pass_bytes(10 ** 7, cfg, "bf16") == 10 ** 7 * (3 * 16 * 2 + 8)                  # neither fits
    assert vocoder.vocoding.engine_mode(40 * 256) == EngineMode.stream()     # auto on a CPU: streaming, whatever the length
    assert vocoder.vocoding.engine_mode(10 ** 9) == EngineMode.stream()
    # auto on a GPU: one pass while it fits the budget, then 10 s windows
    assert engine_mode("auto", "cuda", 40 * 256, cfg, "fp32", max_memory_gb=0.02) == EngineMode.one_pass()
    assert engine_mode("auto", "cuda", 2_000_000, cfg, "fp32", max_memory_gb=0.02) == EngineMode.chunks(10 * SR)
    assert engine_mode("stream", "cuda", 10 ** 9, cfg, "fp32") == EngineMode.stream()
    assert Vocoder(model, cfg, chunk_seconds=0.5).vocoding.engine_mode(100) == EngineMode.chunks(SR // 2)
    assert Vocoder(model, cfg, chunk_seconds=None).vocoding.engine_mode(10 ** 9) == EngineMode.one_pass()


def test_conditioner_plan_follows_the_cache_budget(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    rows = 30 * 256 + 2 * 4                       # one utterance and its two padding blocks (max dilation 4)
    per_row_projections = 6 * 32 * 4              # layers x 2C x fp32 bytes
    plans = {}
    for budget in (rows * per_row_projections, rows * per_row_projections - 1, rows * 80 * 4 - 1):
        engine = InferenceEngine(model, cache_bytes=budget)
        plans[budget] = engine.conditioner_plan(rows, 1)
        out = engine.vocode([mel], chain, torch.Generator().manual_seed(1))[0]
        assert (out - reference_vocode(model, mel, chain, seed=1)).abs().max() < 1e-4
    assert list(plans.values()) == ["projections", "mel", "none"]
    assert InferenceEngine(model).conditioner_plan(rows, 2) == "mel"     # chunked: never the projections
