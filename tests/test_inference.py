"""The inference engine against the training module run through Algorithm 2 (sample())."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import PAPER_RECIPE, SR, tone_sweep
from wavediff.config import load_config
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import linear_schedule, sampling_schedule
from wavediff.errors import WavediffError
from wavediff.inference import EngineMode, FoldedDiffWave, InferenceEngine, quantize_int8
from wavediff.inference.planning import engine_mode, one_pass_bytes
from wavediff.precision import resolve_precision
from wavediff.models.diffwave import build_model
from wavediff.pipelines import Vocoder, vocode_files


def _random_model(overrides=()):
    """A small vocoder whose every weight is non-zero (the zero-initialised output layer too)."""
    cfg = load_config("tiny", ["model.residual_layers=6", "model.residual_channels=16", "model.dilation_cycle=3",
                               *PAPER_RECIPE, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return cfg, model


def _chain(cfg, steps=6):
    sched = linear_schedule(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
    return sampling_schedule(sched, steps, cfg.diffusion.fast_schedule)


def _reference(model, mel, chain, seed):
    """Algorithm 2 with the training module, the conditioner recomputed at every step."""
    with torch.no_grad():
        return sample(lambda x, t: model(x, t, mel=mel.unsqueeze(0)), (1, mel.shape[-1] * model.hop_length),
                      chain, generator=torch.Generator().manual_seed(seed))[0]


@pytest.fixture(scope="module")
def small():
    cfg, model = _random_model()
    mel = torch.rand(cfg.mel.n_mels, 30)
    return cfg, model, mel


@pytest.mark.parametrize("steps", [6, 3, 50])
def test_fp32_engine_equals_the_training_module(small, steps):
    cfg, model, mel = small
    chain = _chain(cfg, steps)
    ref = _reference(model, mel, chain, seed=1)
    out = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    assert out.shape == ref.shape
    assert ref.abs().max() > 0.5                        # a real signal, not a zero model
    assert (out - ref).abs().max() < 1e-4


@pytest.mark.parametrize("chunk", [1000, 2500, 4096])
def test_chunked_output_equals_one_pass(small, chunk):
    cfg, model, mel = small
    chain = _chain(cfg)
    mels = [mel, torch.rand(cfg.mel.n_mels, 7), torch.rand(cfg.mel.n_mels, 19)]
    whole = InferenceEngine(model).vocode(mels, chain, torch.Generator().manual_seed(3))
    engine = InferenceEngine(model, mode=EngineMode.chunks(chunk), tile_rows=700)
    assert engine.net.halo == sum(model.config.dilations) and chunk < sum(m.shape[-1] for m in mels) * 256
    parts = engine.vocode(mels, chain, torch.Generator().manual_seed(3))
    for a, b in zip(whole, parts):
        assert (a - b).abs().max() < 1e-4


def test_padded_batch_equals_each_utterance_alone(small):
    cfg, model, mel = small
    chain = _chain(cfg)
    mels = [mel[:, :11], mel, torch.rand(cfg.mel.n_mels, 2)]
    engine = InferenceEngine(model)
    batch = engine.vocode(mels, chain, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    for i, m in enumerate(mels):
        alone = _reference(model, m, chain, seed=10 + i)
        assert batch[i].shape == (m.shape[-1] * 256,)
        assert (batch[i] - alone).abs().max() < 1e-4


def test_bf16_is_close_to_fp32(small):
    cfg, model, mel = small
    chain = _chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    out = InferenceEngine(model, precision="bf16").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    rel = float((out - ref).norm() / ref.norm())
    assert 0 < rel < 0.02


def test_int8_weights_equal_a_model_rounded_to_int8(small):
    cfg, model, mel = small
    chain = _chain(cfg)
    rounded = build_model(cfg).eval()
    rounded.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer in rounded.layers:
            for conv in (layer.dilated_conv, layer.cond_projection, layer.output_projection):
                w = conv.weight
                scale = w.abs().amax(dim=(1, 2), keepdim=True) / 127
                conv.weight.copy_(torch.round(w / scale).clamp(-127, 127) * scale)
    ref = _reference(rounded, mel, chain, seed=2)
    out = InferenceEngine(model, weights="int8").vocode([mel], chain, torch.Generator().manual_seed(2))[0]
    assert (out - ref).abs().max() < 1e-4
    assert (out - _reference(model, mel, chain, seed=2)).abs().max() > 1e-4   # the rounding does something


def test_quantize_int8_error_is_at_most_half_a_step():
    w = torch.randn(7, 5, 3)
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    assert torch.all((q.float() * scale - w).abs() <= scale / 2 + 1e-7)


def test_step_constants_are_the_projected_step_embedding(small):
    cfg, model, _ = small
    folded = FoldedDiffWave(model)
    steps = torch.tensor([0.0, 3.5, 49.0])
    bias, fill = folded.step_constants(steps)
    emb = model.step_embedding(steps)
    p = model.layers[0].step_projection(emb)                 # layer 0: scale 1, offset 0
    assert torch.allclose(fill[:, 0], -p, atol=1e-6)
    w = model.layers[0].dilated_conv.weight.sum(dim=2)         # (2C, C) taps summed
    expected = (p @ w.t() + model.layers[0].dilated_conv.bias + model.layers[0].cond_projection.bias)
    expected[:, 16:] *= 2                                       # filter half doubled for tanh via sigmoid
    assert torch.allclose(bias[:, 0], expected, atol=1e-5)


def test_engine_refuses_what_it_cannot_run():
    cfg, model = _random_model(["model.conditioning=class", "model.num_classes=10"])
    with pytest.raises(WavediffError, match=r"conditioning='class'.*\['mel'\]"):
        InferenceEngine(model)
    _, vocoder_model = _random_model()
    with pytest.raises(WavediffError, match=r"precision='fp16'.*\['fp32', 'bf16', 'int8'\]"):
        InferenceEngine(vocoder_model, precision="fp16")
    with pytest.raises(WavediffError, match="chunk_samples=0"):
        InferenceEngine(vocoder_model, mode=EngineMode.chunks(0))
    with pytest.raises(WavediffError, match="not an EngineMode"):
        InferenceEngine(vocoder_model, mode="stream")
    with pytest.raises(WavediffError, match=r"weights='int4'.*\['float', 'int8'\]"):
        InferenceEngine(vocoder_model, weights="int4")
    with pytest.raises(WavediffError, match=r"expected \(80, frames >= 1\)"):
        InferenceEngine(vocoder_model).vocode([torch.rand(80, 0)], _chain(cfg))
    with pytest.raises(WavediffError, match="precision='half'"):
        resolve_precision("half", "cpu")


def test_auto_chunking_follows_the_memory_budget(small):
    cfg, model, _ = small
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


def test_file_outputs_do_not_depend_on_the_batch_size(tmp_path, small):
    cfg, model, _ = small
    vocoder = Vocoder(model, cfg)
    (tmp_path / "in").mkdir()
    for i, n in enumerate([3000, 5120, 9000]):
        sf.write(tmp_path / "in" / f"in_{i}.wav", tone_sweep(n / SR, seed=i), SR)
    one = vocode_files(vocoder, [tmp_path / "in"], tmp_path / "b1", batch_size=1, seed=5)
    three = vocode_files(vocoder, [tmp_path / "in"], tmp_path / "b3", batch_size=3, seed=5)
    for a, b in zip(sorted(one), sorted(three)):
        x, y = sf.read(a)[0], sf.read(b)[0]
        assert len(x) == len(y) and np.abs(x - y).max() < 1e-4


PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, {tests!r})
    from test_inference import _random_model, _chain

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    cfg, model = _random_model()
    frames, chunk = int(sys.argv[1]), sys.argv[2]
    engine = (InferenceEngine(model) if chunk == "none"          # caches every layer's projection
              else InferenceEngine(model, mode=EngineMode.stream(8192)) if chunk == "stream"
              else InferenceEngine(model, mode=EngineMode.chunks(int(chunk)), cache_bytes=0))   # caches nothing
    engine.vocode([torch.rand(cfg.mel.n_mels, 4)], _chain(cfg, 1))
    mel = torch.rand(cfg.mel.n_mels, frames)
    open("/proc/self/clear_refs", "w").write("5")     # reset the peak (VmHWM) to the current RSS
    base = rss("VmRSS")
    engine.vocode([mel], _chain(cfg, 1))
    print(json.dumps(rss("VmHWM") - base))
""")


def _peak_growth(frames: int, chunk: str) -> int:
    import pathlib
    script = "from wavediff.inference import EngineMode, InferenceEngine\n" + PEAK_SCRIPT.format(
        tests=str(pathlib.Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", script, str(frames), chunk], capture_output=True, text=True,
                         check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_chunked_peak_memory_does_not_grow_with_length():
    short, long = 200, 1600                      # 51k and 410k samples
    one_pass = _peak_growth(long, "none") - _peak_growth(short, "none")
    chunked = _peak_growth(long, "8192") - _peak_growth(short, "8192")
    # one pass holds ~1 kB a sample (conditioner of every layer); chunks without a cache hold the state only
    assert one_pass > 300e6, f"one pass grew by only {one_pass / 1e6:.0f} MB (chunked: {chunked / 1e6:.0f} MB)"
    assert chunked < 20e6, f"chunked peak grew by {chunked / 1e6:.0f} MB for 8x the audio (one pass {one_pass / 1e6:.0f})"


def test_int8_activations_round_to_the_nearest_level():
    from wavediff.inference.network import INT8_ZERO_POINT, _quantize_rows

    rows = torch.tensor([[-2.0, -0.51, 0.0], [0.26, 1.0, 2.0]], dtype=torch.bfloat16)
    q, scale = _quantize_rows(rows)
    assert q.dtype == torch.uint8 and scale == pytest.approx(2.0 / 127)
    expected = torch.round(rows.float() / scale) + INT8_ZERO_POINT
    assert torch.equal(q.float(), expected)
    assert int(q.min()) == INT8_ZERO_POINT - 127 and int(q.max()) == INT8_ZERO_POINT + 127


@pytest.mark.skipif(not __import__("wavediff.inference.network", fromlist=["x"]).int8_available(),
                    reason="this torch has no oneDNN quantized conv")
def test_int8_convs_stay_close_to_fp32(small):
    cfg, model, mel = small
    chain = _chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    out = InferenceEngine(model, precision="int8").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    bf16 = InferenceEngine(model, precision="bf16").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    rel = float((out - ref).norm() / ref.norm())
    assert float((bf16 - ref).norm() / ref.norm()) < rel < 0.05   # int8 is coarser than bf16, still close


def test_conditioner_plan_follows_the_cache_budget(small):
    cfg, model, mel = small
    chain = _chain(cfg)
    rows = 30 * 256 + 2 * 4                       # one utterance and its two padding blocks (max dilation 4)
    per_row_projections = 6 * 32 * 4              # layers x 2C x fp32 bytes
    plans = {}
    for budget in (rows * per_row_projections, rows * per_row_projections - 1, rows * 80 * 4 - 1):
        engine = InferenceEngine(model, cache_bytes=budget)
        plans[budget] = engine.conditioner_plan(rows, 1)
        out = engine.vocode([mel], chain, torch.Generator().manual_seed(1))[0]
        assert (out - _reference(model, mel, chain, seed=1)).abs().max() < 1e-4
    assert list(plans.values()) == ["projections", "mel", "none"]
    assert InferenceEngine(model).conditioner_plan(rows, 2) == "mel"     # chunked: never the projections
