"""wavediff.inference.native: the CPU kernels against closed forms (float64 sigmoid,
round-to-nearest quantization, torch.quantize_per_tensor), and the fallback when they cannot be built."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from wavediff.inference import EngineMode, InferenceEngine, native

from helpers import TESTS_DIR, fast_chain, random_vocoder_model


kernels = native.load()


needs_kernels = pytest.mark.skipif(kernels is None, reason="native kernels unavailable here (no compiler, "
                                   "no AVX-512, or not x86-64 Linux): the torch path is used")


def _gate_reference(u: torch.Tensor, value: float) -> torch.Tensor:
    C = u.shape[1] // 2
    a, b = torch.sigmoid(u[:, :C].double()), torch.sigmoid(u[:, C:].double())
    return a + value * a * b


def _gate_terms(u: torch.Tensor, value: float) -> torch.Tensor:
    """|a| + |value a b|: the scale of the rounding error of a + value a b."""
    C = u.shape[1] // 2
    a, b = torch.sigmoid(u[:, :C].double()), torch.sigmoid(u[:, C:].double())
    return a + abs(value) * a * b


def _in_subprocess(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


@needs_kernels
@pytest.mark.parametrize("channels", [64, 24, 5])     # vector lanes, a tail, scalar only
def test_gate_matches_the_closed_form(channels):
    torch.manual_seed(0)
    y = torch.randn(1000, 2 * channels) * 6
    y[0, :4] = torch.tensor([0.0, 90.0, -90.0, 1e-3])  # saturation and the sign switch
    out32 = kernels.gate(y, torch.empty(1000, channels), -2.0)
    ref32, terms = _gate_reference(y, -2.0), _gate_terms(y, -2.0)
    # float32 range reduction in exp(): relative error up to ~1e-7 * |x| (4e-6 at the clamp)
    assert bool(((out32.double() - ref32).abs() <= terms * 4e-6 + 1e-30).all())
    yb = y.bfloat16()
    out16 = kernels.gate(yb, torch.empty(1000, channels, dtype=torch.bfloat16), 0.5)
    ref = _gate_reference(yb.float(), 0.5)
    # one bf16 rounding (half a unit in the last place, |v| * 2^-8) on top of float32 arithmetic
    # (relative to the terms, as a + v a b cancels); exp() clamps at e^-87, so values below 1e-30
    # are only absolutely close
    bound = ref.abs() * 2 ** -8 + _gate_terms(yb.float(), 0.5) * 1e-5 + 1e-30
    assert bool(((out16.double() - ref).abs() <= bound).all())


@needs_kernels
def test_gate_adds_the_conditioner_in_one_or_two_pieces():
    torch.manual_seed(1)
    y = torch.randn(300, 128).bfloat16()
    cond = torch.randn(300, 128).bfloat16()
    ref = _gate_reference(y.float() + cond.float(), -2.0)
    whole = kernels.gate(y, torch.empty(300, 64, dtype=torch.bfloat16), -2.0, cond)
    split = kernels.gate(y, torch.empty(300, 64, dtype=torch.bfloat16), -2.0, (cond[:123].clone(), cond[123:].clone()))
    assert torch.equal(whole, split)
    assert (whole.double() - ref).abs().max() < 2 ** -8
    with pytest.raises(ValueError, match="must be contiguous rows like y"):
        kernels.gate(y, torch.empty(300, 64, dtype=torch.bfloat16), -2.0, cond[:200])
    with pytest.raises(ValueError, match="must be contiguous"):
        kernels.gate(y.t(), torch.empty(128, 150, dtype=torch.bfloat16), -2.0)


@needs_kernels
@pytest.mark.parametrize("channels", [64, 5])
def test_gate_into_uint8_levels_rounds_the_closed_form(channels):
    torch.manual_seed(3)
    y = (torch.randn(700, 2 * channels) * 4).bfloat16()
    cond = (torch.randn(700, 2 * channels)).bfloat16()
    scale = 1.0 / 127
    q = kernels.gate(y, torch.empty(700, channels, dtype=torch.uint8), -2.0, (cond[:300].clone(), cond[300:].clone()),
                     quantize_scale=scale)
    g = _gate_reference(y.float() + cond.float(), -2.0)             # in (-1, 1)
    levels = (torch.round(g / scale) + 128).clamp(0, 255)
    # the uint8 gate's sigmoid is coarse: relative error <= 2^-14 (rcp14) + 2.7e-6 (2^f) each, so
    # |g error| <= 2 * 6.4e-5 = 0.016 of a level: only values that close to a rounding boundary move
    assert (q.double() - levels).abs().max() <= 1
    assert (q.double() - 128 - g / scale).abs().max() <= 0.5 + 0.017   # half a level, plus that error
    assert (q.double() != levels).double().mean() < 0.033
    with pytest.raises(ValueError, match="uint8"):
        kernels.gate(y, torch.empty(700, channels, dtype=torch.bfloat16), -2.0, quantize_scale=scale)


@needs_kernels
@pytest.mark.parametrize("accumulate", [False, True])
def test_residual_and_skip_updates_equal_the_sums(accumulate):
    torch.manual_seed(4)
    n, C = 500, 48
    y = torch.randn(n, 2 * C).bfloat16()
    current = (torch.randn(n, C) * 30).bfloat16()
    nxt = torch.full((n, C), float("nan"), dtype=torch.bfloat16)
    s0, s1 = 40, 470                                        # a padded tile: only rows [s0, s1) are new
    skip = torch.randn(s1 - s0, C).bfloat16()
    first, rest = skip[:100].clone(), skip[100:].clone()   # a ring's rows that wrap around its end
    kernels.residual_skip(y, (current, nxt), (first, rest), (s0, s1), accumulate)
    # one float32 sum, rounded once to bf16 (round to nearest even, as torch's .bfloat16())
    assert torch.equal(nxt, (current.float() + y[:, :C].float()).bfloat16())
    want = (skip.float() + y[s0:s1, C:].float()).bfloat16() if accumulate else y[s0:s1, C:]
    assert torch.equal(torch.cat([first, rest]), want)
    only_skip = torch.zeros(n, C, dtype=torch.bfloat16)    # the last layer: no residual, width C
    kernels.residual_skip(y[:, C:].contiguous(), None, only_skip, (0, n), accumulate)
    assert torch.equal(only_skip, y[:, C:])
    with pytest.raises(ValueError, match="must be contiguous bf16"):
        kernels.residual_skip(y, (current, nxt), skip[:10], (s0, s1), accumulate)


@needs_kernels
def test_quantize_equals_torch_and_the_closed_form():
    torch.manual_seed(2)
    for n in [16 * 4096 + 5, 37, 1]:
        x = (torch.randn(n) * 3).bfloat16()
        q = torch.empty(n, dtype=torch.uint8)
        scale = kernels.quantize(x, q, 128)
        assert scale == pytest.approx(max(x.float().abs().max().item(), 1e-12) / 127, rel=1e-12)
        ref = torch.quantize_per_tensor(x.float(), scale, 128, torch.quint8).int_repr()
        assert torch.equal(q, ref)
        closed = (torch.round(x.double() / scale) + 128).clamp(0, 255)
        assert (q.double() - closed).abs().max() <= 1     # ties may round either way in float32
    zero = torch.zeros(64, dtype=torch.bfloat16)
    q = torch.empty(64, dtype=torch.uint8)
    assert kernels.quantize(zero, q, 128) == pytest.approx(1e-12 / 127) and bool((q == 128).all())


@needs_kernels
@pytest.mark.parametrize("precision", ["bf16", "int8"])
@pytest.mark.parametrize("streaming", [False, True])
def test_engine_with_kernels_stays_as_close_to_fp32_as_without(precision, streaming):
    from wavediff.inference.network import int8_available

    if precision == "int8" and not int8_available():
        pytest.skip("no oneDNN int8 conv in this torch build")
    cfg, model = random_vocoder_model()
    mel = torch.rand(cfg.mel.n_mels, 24)
    chain = fast_chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(9))[0]
    errors = {}
    for flag in (True, False):
        engine = InferenceEngine(model, precision=precision, native=flag,
                                 mode=EngineMode.stream() if streaming else EngineMode.one_pass())
        assert (engine.net.native is not None) == flag
        out = engine.vocode([mel], chain, torch.Generator().manual_seed(9))[0]
        errors[flag] = ((out - ref).abs().max() / ref.abs().max()).item()
    assert errors[True] < 1.5 * errors[False] + 1e-3, errors


def test_kernels_are_built_into_the_cache_or_fall_back(tmp_path):
    code = """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        sys.path.insert(0, {tests!r})
        import torch
        from helpers import fast_chain, random_vocoder_model
        from wavediff.inference import InferenceEngine, native
        k = native.load()
        cfg, model = random_vocoder_model()
        engine = InferenceEngine(model, precision="bf16")
        out = engine.vocode([torch.rand(cfg.mel.n_mels, 3)], fast_chain(cfg))[0]
        print("LOADED", k is not None, engine.net.native is not None, bool(torch.isfinite(out).all()))
    """.format(tests=str(TESTS_DIR))
    off = _in_subprocess(code, {"WAVEDIFF_NATIVE": "0", "WAVEDIFF_CACHE": str(tmp_path / "a")})
    assert "LOADED False False True" in off.stdout, off.stderr
    assert "disabled (WAVEDIFF_NATIVE=0)" in off.stdout
    broken = _in_subprocess(code, {"CC": "false", "WAVEDIFF_CACHE": str(tmp_path / "b")})   # a compiler that fails
    assert "LOADED False False True" in broken.stdout, broken.stderr
    assert not list((tmp_path / "b").glob("kernels-*.so"))
    if kernels is not None:
        built = _in_subprocess(code, {"WAVEDIFF_CACHE": str(tmp_path / "c")})
        assert "LOADED True True True" in built.stdout, built.stderr
        assert "building native kernels" in built.stdout
        assert len(list((tmp_path / "c").glob("kernels-*.so"))) == 1
        again = _in_subprocess(code, {"WAVEDIFF_CACHE": str(tmp_path / "c")})
        assert "LOADED True True True" in again.stdout and "building" not in again.stdout


def test_int8_projections_equal_the_float_matrices():
    """Each int8 layer's one GEMM gives [residual | skip] of uint8 gate levels (the last layer:
    skip only), against float64 products of the dequantized levels with the float weights."""
    from wavediff.inference.network import GATE_SCALE, INT8_ZERO_POINT, int8_available

    if not int8_available() or kernels is None:
        pytest.skip("no oneDNN int8 in this torch build, or no native kernels (the projections stay bf16)")
    cfg, model = random_vocoder_model()
    engine = InferenceEngine(model, precision="int8")
    without = InferenceEngine(model, precision="int8", native=False)
    assert engine.net.int8_projections and without.net.layers[0].projection is None
    torch.manual_seed(5)
    levels = torch.randint(1, 256, (300, engine.net.channels), dtype=torch.uint8)
    g = (levels.double() - INT8_ZERO_POINT) * GATE_SCALE
    for index, (layer, folded) in enumerate(zip(engine.net.layers, engine.net.folded.layers)):
        last = index == len(engine.net.layers) - 1
        weights = folded.skip_weight if last else torch.cat([folded.residual_weight, folded.skip_weight], 1)
        y = torch.ops.onednn.qlinear_pointwise(levels, GATE_SCALE, INT8_ZERO_POINT, layer.projection,
                                               layer.projection_scale, layer.projection_zero, None, 1.0, 0,
                                               torch.float32, "none", [], "")
        ref = g @ weights.double()
        # per-channel int8 weights: each off by at most half a step (|w|max / 254) of its column
        bound = g.abs().sum(1, keepdim=True) * weights.abs().amax(0, keepdim=True).double() / 254
        assert y.shape == ref.shape
        assert bool(((y.double() - ref).abs() <= bound * 1.001 + 1e-5).all()), index


def test_native_true_without_kernels_is_an_error():
    cfg, model = random_vocoder_model()
    with pytest.raises(Exception, match="native kernels are unavailable"):
        # fp32 never uses them (it stays the reference)
        InferenceEngine(model, precision="fp32", native=True)
