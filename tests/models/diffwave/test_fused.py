"""wavediff.models.diffwave.fused: the fused training path against the reference modules."""
from __future__ import annotations

import pytest
import torch

from wavediff.config import load_config
from wavediff.errors import WavediffError
from wavediff.inference import native
from wavediff.models.diffwave import build_model


CONFIGS = {
    # mel vocoder; dilation 8 with 3 frames x 16 hop reaches past short clips (the |offset| >= L case)
    "mel": ("tiny", ["model.residual_layers=5", "model.residual_channels=16", "model.dilation_cycle=5",
                     "mel.hop_length=16"]),
    "mel-k5": ("tiny", ["model.residual_layers=3", "model.residual_channels=16", "model.dilation_cycle=3",
                        "model.kernel_size=5", "mel.hop_length=16"]),
    "class": ("sc09-class-cpu", ["model.residual_layers=4", "model.residual_channels=16", "model.dilation_cycle=4"]),
    "uncond": ("sc09-uncond-cpu", ["model.residual_layers=4", "model.residual_channels=16",
                                   "model.dilation_cycle=4"]),
}


def _inputs(cfg, batch=3, frames=4):
    g = torch.Generator().manual_seed(1)
    kind = cfg.model.conditioning
    length = frames * cfg.mel.hop_length if kind == "mel" else 300
    audio = 0.3 * torch.randn(batch, length, generator=g)
    steps = torch.randint(0, cfg.diffusion.num_steps, (batch,), generator=g).float()
    cond = {}
    if kind == "mel":
        cond["mel"] = torch.rand(batch, cfg.mel.n_mels, frames, generator=g)
    elif kind == "class":
        cond["labels"] = torch.tensor([0, 3, 1])[:batch]
    return audio, steps, cond


def _run(model, implementation, bf16, audio, steps, cond):
    model.zero_grad(set_to_none=True)
    model.implementation = implementation
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(audio, steps, **cond)
    target = torch.linspace(-1, 1, audio.numel()).view_as(audio)
    loss = (out.float() - target).square().mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach().float(), loss.detach(), grads


def _model(name):
    preset, overrides = CONFIGS[name]
    cfg = load_config(preset, overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():   # the output projection starts at zero; give every weight a gradient path
        model.output_projection.weight.normal_(0, 0.3)
        model.output_projection.bias.fill_(0.1)
        for layer in model.layers:
            layer.output_projection.bias.normal_(0, 0.1)
    return cfg, model


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_fp32_matches_the_reference_modules(name):
    cfg, model = _model(name)
    audio, steps, cond = _inputs(cfg)
    ref_out, ref_loss, ref_grads = _run(model, "reference", False, audio, steps, cond)
    out, loss, grads = _run(model, "fused", False, audio, steps, cond)
    assert set(grads) == set(ref_grads)            # every parameter gets its gradient
    assert _rel(out, ref_out) < 1e-5
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-5)
    for n, g in ref_grads.items():
        assert _rel(grads[n], g) < 1e-4, n


@pytest.mark.parametrize("use_native", [True, False])
@pytest.mark.parametrize("name", ["mel", "class"])
def test_fused_bf16_is_as_close_to_fp32_as_reference_autocast(name, use_native, monkeypatch):
    if use_native and native.load() is None:
        pytest.skip("no native kernels on this machine")
    if not use_native:
        monkeypatch.setattr(native, "load", lambda: None)
    cfg, model = _model(name)
    audio, steps, cond = _inputs(cfg)
    ref_out, ref_loss, ref_grads = _run(model, "reference", False, audio, steps, cond)
    auto_out, auto_loss, auto_grads = _run(model, "reference", True, audio, steps, cond)
    out, loss, grads = _run(model, "fused", True, audio, steps, cond)
    # bf16 has 8 significant bits: the fused path must stay within 2x autocast's own error (plus a floor)
    assert _rel(out, ref_out) < 2 * _rel(auto_out, ref_out) + 1e-2
    assert abs(float(loss) - float(ref_loss)) < 2 * abs(float(auto_loss) - float(ref_loss)) + 1e-2 * float(ref_loss)
    flat = torch.cat([g.flatten() for g in grads.values()])
    flat_ref = torch.cat([ref_grads[n].flatten() for n in grads])
    flat_auto = torch.cat([auto_grads[n].flatten() for n in grads])
    assert _rel(flat, flat_ref) < 2 * _rel(flat_auto, flat_ref) + 2e-2


def test_native_training_gate_kernels_match_closed_forms():
    kernels = native.load()
    if kernels is None:
        pytest.skip("no native kernels on this machine")
    g = torch.Generator().manual_seed(0)
    n, C, items = 3 * 40, 24, 3            # 24 channels: vector lanes and the scalar tail
    pre = (3 * torch.randn(n, 2 * C, generator=g)).bfloat16()
    bias = torch.randn(items, 2 * C, generator=g)
    gates = torch.empty(n, 2 * C, dtype=torch.bfloat16)
    h = torch.empty(n, C, dtype=torch.bfloat16)
    kernels.train_gate_forward(pre, bias, gates, h)
    u = pre.float() + bias.repeat_interleave(n // items, 0)
    s, t = torch.sigmoid(u[:, :C]), torch.tanh(u[:, C:])
    assert torch.allclose(gates[:, :C].float(), s, atol=4e-3, rtol=0)     # bf16 rounding: 2^-9 of values < 1
    assert torch.allclose(gates[:, C:].float(), t, atol=4e-3, rtol=0)
    assert torch.allclose(h.float(), s * t, atol=4e-3, rtol=0)
    g_h = torch.randn(n, C, generator=g).bfloat16()
    g_pre = torch.empty(n, 2 * C, dtype=torch.bfloat16)
    bias_grad = torch.empty(items, 2 * C)
    kernels.train_gate_backward(g_h, gates, g_pre, bias_grad)
    s, t, gh = gates[:, :C].float(), gates[:, C:].float(), g_h.float()
    want = torch.cat([gh * t * s * (1 - s), gh * s * (1 - t * t)], dim=1)
    assert torch.allclose(g_pre.float(), want, atol=1e-2 * want.abs().max().item(), rtol=1e-2)
    sums = g_pre.float().view(items, -1, 2 * C).sum(1)
    assert torch.allclose(bias_grad, sums, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="train_gate_forward"):
        kernels.train_gate_forward(pre.float(), bias, gates, h)


def test_a_second_forward_before_backward_is_refused_not_silently_wrong():
    cfg, model = _model("mel")
    model.implementation = "fused"
    audio, steps, cond = _inputs(cfg)
    first = model(audio, steps, **cond).square().mean()
    second = model(audio * 0.5, steps, **cond).square().mean()
    second.backward()                    # the latest forward pass is fine
    with pytest.raises(WavediffError, match="overwritten"):
        first.backward()
    # a forward pass without autograd (validation, say) reuses the same buffers too
    third = model(audio, steps, **cond).square().mean()
    with torch.no_grad():
        model(audio, steps, **cond)
    with pytest.raises(WavediffError, match="overwritten"):
        third.backward()


def test_no_grad_forward_matches_and_keeps_one_layer_of_buffers():
    cfg, model = _model("mel")
    audio, steps, cond = _inputs(cfg)
    with torch.no_grad():
        ref = model(audio, steps, **cond)
        model.implementation = "fused"
        out = model(audio, steps, **cond)
    assert _rel(out, ref) < 1e-5
    B, L = audio.shape
    C, layers = cfg.model.residual_channels, cfg.model.residual_layers
    row_bytes = B * L * 4
    # without a backward pass to come: one layer's buffers (xs, gates, h, im2col with the mel's
    # M columns, pre-activation, residual stream, skip sum, head: 12 C + M values a row), whatever the depth
    assert model._workspace.nbytes() == (12 * C + cfg.mel.n_mels) * row_bytes
    model(audio, steps, **cond).sum().backward()
    # for backward, every layer keeps its input, gates and gate output (4 C values a row)
    assert model._workspace.nbytes() >= layers * 4 * C * row_bytes


def test_unknown_implementation_is_refused():
    _, model = _model("mel")
    with pytest.raises(WavediffError, match="reference"):
        model.implementation = "fast"
