"""wavediff.inference.engine: the inference engine against the training module run through
Algorithm 2 (sample()): fp32, chunks, padded batches, bf16, int8, PriorGrad's σ, the clean-estimate
correction, the step constants, and a peak memory that does not grow with length."""
from __future__ import annotations

import sys

import pytest
import torch

from wavediff.diffusion.prior import noise_std
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.solvers import Solver
from wavediff.errors import WavediffError
from wavediff.inference import EngineMode, InferenceEngine
from wavediff.models.diffwave import build_model
from wavediff.precision import resolve_precision

from helpers import fast_chain, peak_memory_growth, random_vocoder_model, reference_vocode


def _prior_reference(model, mel, chain, seed, std):
    with torch.no_grad():
        return sample(lambda x, t: model(x, t, mel=mel.unsqueeze(0)), (1, mel.shape[-1] * model.hop_length),
                      chain, generator=torch.Generator().manual_seed(seed), noise_std=std.unsqueeze(0))[0]


@pytest.mark.parametrize("steps", [6, 3, 50])
def test_fp32_engine_equals_the_training_module(random_vocoder, steps):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg, steps)
    ref = reference_vocode(model, mel, chain, seed=1)
    out = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    assert out.shape == ref.shape
    assert ref.abs().max() > 0.5                        # a real signal, not a zero model
    assert (out - ref).abs().max() < 1e-4


@pytest.mark.parametrize("chunk", [1000, 2500, 4096])
def test_chunked_output_equals_one_pass(random_vocoder, chunk):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    mels = [mel, torch.rand(cfg.mel.n_mels, 7), torch.rand(cfg.mel.n_mels, 19)]
    whole = InferenceEngine(model).vocode(mels, chain, torch.Generator().manual_seed(3))
    engine = InferenceEngine(model, mode=EngineMode.chunks(chunk), tile_rows=700)
    assert engine.net.halo == sum(model.config.dilations) and chunk < sum(m.shape[-1] for m in mels) * 256
    parts = engine.vocode(mels, chain, torch.Generator().manual_seed(3))
    for a, b in zip(whole, parts):
        assert (a - b).abs().max() < 1e-4


def test_padded_batch_equals_each_utterance_alone(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    mels = [mel[:, :11], mel, torch.rand(cfg.mel.n_mels, 2)]
    engine = InferenceEngine(model)
    batch = engine.vocode(mels, chain, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    for i, m in enumerate(mels):
        alone = reference_vocode(model, m, chain, seed=10 + i)
        assert batch[i].shape == (m.shape[-1] * 256,)
        assert (batch[i] - alone).abs().max() < 1e-4


def test_bf16_is_close_to_fp32(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    out = InferenceEngine(model, precision="bf16").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    rel = float((out - ref).norm() / ref.norm())
    assert 0 < rel < 0.02


def _rounded_to_int8(cfg, model):
    """A copy of ``model`` whose convolution weights are rounded per output channel to int8 levels."""
    rounded = build_model(cfg).eval()
    rounded.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer in rounded.layers:
            for conv in (layer.dilated_conv, layer.cond_projection, layer.output_projection):
                w = conv.weight
                scale = w.abs().amax(dim=(1, 2), keepdim=True) / 127
                conv.weight.copy_(torch.round(w / scale).clamp(-127, 127) * scale)
    return rounded


def test_int8_weights_equal_a_model_rounded_to_int8(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    rounded = _rounded_to_int8(cfg, model)
    ref = reference_vocode(rounded, mel, chain, seed=2)
    out = InferenceEngine(model, weights="int8").vocode([mel], chain, torch.Generator().manual_seed(2))[0]
    assert (out - ref).abs().max() < 1e-4
    assert (out - reference_vocode(model, mel, chain, seed=2)).abs().max() > 1e-4   # the rounding does something


def test_engine_refuses_what_it_cannot_run():
    cfg, model = random_vocoder_model(["model.conditioning=class", "model.num_classes=10"])
    with pytest.raises(WavediffError, match=r"conditioning='class'.*\['mel'\]"):
        InferenceEngine(model)
    _, vocoder_model = random_vocoder_model()
    with pytest.raises(WavediffError, match=r"precision='fp16'.*\['fp32', 'bf16', 'int8'\]"):
        InferenceEngine(vocoder_model, precision="fp16")
    with pytest.raises(WavediffError, match="chunk_samples=0"):
        InferenceEngine(vocoder_model, mode=EngineMode.chunks(0))
    with pytest.raises(WavediffError, match="not an EngineMode"):
        InferenceEngine(vocoder_model, mode="stream")
    with pytest.raises(WavediffError, match=r"weights='int4'.*\['float', 'int8'\]"):
        InferenceEngine(vocoder_model, weights="int4")
    with pytest.raises(WavediffError, match=r"expected \(80, frames >= 1\)"):
        InferenceEngine(vocoder_model).vocode([torch.rand(80, 0)], fast_chain(cfg))
    with pytest.raises(WavediffError, match="precision='half'"):
        resolve_precision("half", "cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_chunked_peak_memory_does_not_grow_with_length():
    short, long = 200, 1600                      # 51k and 410k samples
    one_pass = peak_memory_growth(long, "none") - peak_memory_growth(short, "none")
    chunked = peak_memory_growth(long, "8192") - peak_memory_growth(short, "8192")
    # one pass holds ~1 kB a sample (conditioner of every layer); chunks without a cache hold the state only
    assert one_pass > 300e6, f"one pass grew by only {one_pass / 1e6:.0f} MB (chunked: {chunked / 1e6:.0f} MB)"
    assert chunked < 20e6, f"chunked peak grew by {chunked / 1e6:.0f} MB for 8x the audio (one pass {one_pass / 1e6:.0f})"


def test_engine_with_a_clean_estimate_correction_equals_the_training_module():
    cfg, model = random_vocoder_model()
    mels = [torch.rand(cfg.mel.n_mels, 7), torch.rand(cfg.mel.n_mels, 4)]
    chain = fast_chain(cfg, 6)

    def shrink(s, x0):   # any deterministic correction: halve the estimate at the three noisiest steps
        return 0.5 * x0 if s >= 4 else None

    engine = InferenceEngine(model)
    out = engine.vocode(mels, chain, [torch.Generator().manual_seed(40 + i) for i in range(2)],
                        correct_x0=[shrink, shrink])
    for i, m in enumerate(mels):
        with torch.no_grad():
            ref = sample(lambda x, t: model(x, t, mel=m.unsqueeze(0)), (1, m.shape[-1] * model.hop_length), chain,
                         generator=torch.Generator().manual_seed(40 + i), correct_x0=shrink)[0]
        assert (out[i] - ref).abs().max() < 1e-4
    plain = engine.vocode(mels, chain, [torch.Generator().manual_seed(40 + i) for i in range(2)])
    assert (plain[0] - out[0]).abs().max() > 1e-3
    with pytest.raises(WavediffError, match="streaming"):
        InferenceEngine(model, mode=EngineMode.stream()).vocode(mels, chain, correct_x0=[shrink, None])


@pytest.mark.parametrize("streaming", [False, True])
def test_engine_with_the_prior_equals_the_training_module(streaming):
    cfg, model = random_vocoder_model(["diffusion.prior=priorgrad", "diffusion.prior_energy_max=3.0"])
    mels = [torch.rand(cfg.mel.n_mels, 9), torch.rand(cfg.mel.n_mels, 4) * 0.3]
    stds = [noise_std(m, cfg.mel, cfg.diffusion) for m in mels]
    assert float(stds[1].min()) < float(stds[0].max())
    chain = fast_chain(cfg, 6)
    engine = InferenceEngine(model, mode=EngineMode.stream(700) if streaming else EngineMode.one_pass())
    gens = [torch.Generator().manual_seed(30 + i) for i in range(len(mels))]
    out = engine.vocode(mels, chain, gens, noise_std=stds)
    for i, m in enumerate(mels):
        ref = _prior_reference(model, m, chain, 30 + i, stds[i])
        assert (out[i] - ref).abs().max() < 1e-4
    # and the prior changes the result (the scaling is applied, not ignored)
    plain = engine.vocode(mels, chain, [torch.Generator().manual_seed(30 + i) for i in range(len(mels))])
    assert (plain[1] - out[1]).abs().max() > 1e-2


def test_engine_refuses_a_sigma_of_the_wrong_length():
    cfg, model = random_vocoder_model()
    mel = torch.rand(cfg.mel.n_mels, 5)
    with pytest.raises(WavediffError, match="noise_std 0 has"):
        InferenceEngine(model).vocode([mel], fast_chain(cfg), noise_std=[torch.ones(7)])


@pytest.mark.parametrize("mode", ["one-pass", "chunks", "stream"])
@pytest.mark.parametrize("solver", [Solver("ddim"), Solver("ddim", ddim_eta=0.5), Solver("dpm-solver")],
                         ids=["ddim0", "ddim0.5", "dpm"])
def test_engine_runs_every_solver_as_the_training_module(mode, solver):
    """DDIM and DPM-Solver++ on every engine mode against sample() with the training module
    (DPM-Solver++ keeps the previous step's clean estimate: a ring when streaming)."""
    cfg, model = random_vocoder_model()
    mels = [torch.rand(cfg.mel.n_mels, 9), torch.rand(cfg.mel.n_mels, 5)]
    engine_mode = {"one-pass": EngineMode.one_pass(), "chunks": EngineMode.chunks(1500),
                   "stream": EngineMode.stream(600)}[mode]
    engine = InferenceEngine(model, mode=engine_mode)
    for steps in (6, 4):
        chain = fast_chain(cfg, steps)
        out = engine.vocode(mels, chain, [torch.Generator().manual_seed(50 + i) for i in range(2)], solver=solver)
        for i, m in enumerate(mels):
            with torch.no_grad():
                ref = sample(lambda x, t: model(x, t, mel=m.unsqueeze(0)), (1, m.shape[-1] * model.hop_length),
                             chain, generator=torch.Generator().manual_seed(50 + i), solver=solver)[0]
            assert ref.abs().max() > 0.1
            assert (out[i] - ref).abs().max() < 1e-4
    ancestral = engine.vocode(mels, chain, [torch.Generator().manual_seed(50 + i) for i in range(2)])
    assert (ancestral[0] - out[0]).abs().max() > 1e-3   # the rule is applied, not ignored


@pytest.mark.parametrize("mode", ["one-pass", "stream"])
def test_int8_weights_run_dpm_solver_as_a_model_rounded_to_int8(random_vocoder, mode):
    """The update rules on the int8 path: DPM-Solver++ (its history ring when streaming) with int8
    weights equals sample() with the training module whose weights are rounded the same way."""
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    rounded = _rounded_to_int8(cfg, model)
    with torch.no_grad():
        ref = sample(lambda x, t: rounded(x, t, mel=mel.unsqueeze(0)), (1, mel.shape[-1] * rounded.hop_length), chain,
                     generator=torch.Generator().manual_seed(2), solver=Solver("dpm-solver"))[0]
    engine_mode = EngineMode.one_pass() if mode == "one-pass" else EngineMode.stream(700)
    out = InferenceEngine(model, weights="int8", mode=engine_mode).vocode(
        [mel], chain, torch.Generator().manual_seed(2), solver=Solver("dpm-solver"))[0]
    assert ref.abs().max() > 0.1
    assert (out - ref).abs().max() < 1e-4
