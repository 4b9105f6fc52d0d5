"""wavediff.models.hifigan.windows: the stated reach bounds how far a mel frame moves the output
(checked by perturbing one frame: every sample beyond the reach stays bit-identical), windows
with that much context equal one pass within 1e-4 in fp32 for the shapes of V1, V3 and the
AudioLDM vocoder (an odd rate), and every window reads the same number of frames, so memory is
set by the window, not by the length. The vocoder's bf16 copy stays close to fp32."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from wavediff.config import HIFIGAN_VERSIONS
from wavediff.errors import WavediffError
from wavediff.models.hifigan import HiFiGANGenerator, fold_weight_norm
from wavediff.models.hifigan.vocoding import HiFiGANVocoding
from wavediff.models.hifigan.windows import context_frames, generate_in_windows, reach_samples, window_bounds

N_MELS = 16


def scaled_generator(version: str, seed: int = 0) -> HiFiGANGenerator:
    """A narrow generator of ``version``'s shape with weights of unit gain, so that every layer
    carries signal of order one (the authors' N(0, 0.01) start leaves the output near zero)."""
    torch.manual_seed(seed)
    generator = fold_weight_norm(HiFiGANGenerator(N_MELS, replace(HIFIGAN_VERSIONS[version], initial_channels=32)))
    for module in generator.modules():
        if isinstance(module, torch.nn.Conv1d):
            fan_in = module.weight.shape[1] * module.weight.shape[2]
        elif isinstance(module, torch.nn.ConvTranspose1d):
            fan_in = module.weight.shape[0] * module.weight.shape[2] / module.stride[0]
        else:
            continue
        torch.nn.init.normal_(module.weight, 0.0, 1.0 / math.sqrt(fan_in))
    return generator.eval()


@pytest.mark.parametrize("version", ["v1", "v3", "audioldm"])
def test_a_frame_moves_no_sample_beyond_the_reach(version):
    generator = scaled_generator(version)
    hop, reach = generator.hop_length, reach_samples(generator.config)
    mel = torch.randn(N_MELS, 80)
    moved = mel.clone()
    moved[:, 40] += 1.0
    with torch.no_grad():
        changed = (generator(mel[None])[0] != generator(moved[None])[0]).nonzero().flatten()
    first, last = int(changed.min()), int(changed.max())
    assert 40 * hop - first <= reach and last - (41 * hop - 1) <= reach
    assert 40 * hop - first > 0.7 * reach               # the bound is not loose: the effect reaches most of it
    assert context_frames(generator.config) * hop >= reach + hop


@pytest.mark.parametrize("version", ["v1", "v3", "audioldm"])
@pytest.mark.parametrize("window", [1, 9, 40, 200])
def test_windows_equal_one_pass(version, window):
    generator = scaled_generator(version)
    mel = torch.randn(N_MELS, 97)
    with torch.no_grad():
        one_pass = generator(mel[None])[0]
        windowed = generate_in_windows(generator, mel, window)
    assert windowed.shape == one_pass.shape == (97 * generator.hop_length,)
    assert one_pass.abs().max() > 0.1                   # a signal, not a near-zero output
    assert torch.allclose(windowed, one_pass, atol=1e-4, rtol=0)


@pytest.mark.parametrize("frames, window, context", [(100, 10, 4), (100, 33, 0), (7, 10, 4), (50, 1, 20)])
def test_windows_cover_each_frame_once_and_read_one_span(frames, window, context):
    bounds = list(window_bounds(frames, window, context))
    produced = [f for start, end, _, _ in bounds for f in range(start, end)]
    assert produced == list(range(frames))
    assert {hi - lo for _, _, lo, hi in bounds} == {min(frames, window + 2 * context)}
    for start, end, lo, hi in bounds:
        assert 0 <= lo <= start and end <= hi <= frames
        assert start - lo >= context or lo == 0
        assert hi - end >= context or hi == frames
    with pytest.raises(WavediffError, match="window=0"):
        list(window_bounds(frames, 0, context))


def test_memory_is_set_by_the_window_not_the_length():
    generator = scaled_generator("v3")
    widths = []
    generator.input_conv.register_forward_hook(lambda module, args, out: widths.append(args[0].shape[-1]))
    context = context_frames(generator.config)
    with torch.no_grad():
        for frames in (300, 3000):
            widths.clear()
            generate_in_windows(generator, torch.randn(N_MELS, frames), 50)
            assert set(widths) == {50 + 2 * context}


def test_the_vocoder_windows_on_a_cpu_and_its_bf16_copy_stays_close():
    generator = scaled_generator("v3")
    mel = torch.randn(N_MELS, 700)
    cpu = torch.device("cpu")
    one_pass = HiFiGANVocoding(generator, cpu, "fp32", "float", 22050, chunk_seconds=None)
    auto = HiFiGANVocoding(generator, cpu, "fp32", "float", 22050, chunk_seconds="auto")
    assert one_pass.window_frames(700) is None and auto.window_frames(700) == 256
    assert HiFiGANVocoding(generator, cpu, "fp32", "float", 22050, chunk_seconds=0.5).window_frames(700) == 43
    kwargs = dict(steps=1, etas=None, generators=[None], sampler=None)
    reference = one_pass.vocode([mel], **kwargs)[0]
    assert torch.allclose(auto.vocode([mel], **kwargs)[0], reference, atol=1e-4, rtol=0)
    bf16 = HiFiGANVocoding(generator, cpu, "bf16", "float", 22050).vocode([mel], **kwargs)[0]
    assert bf16.dtype == torch.float32
    assert float((bf16 - reference).norm() / reference.norm()) < 0.05
    with pytest.raises(WavediffError, match="chunk_seconds='often'"):
        HiFiGANVocoding(generator, cpu, "fp32", "float", 22050, chunk_seconds="often")
    with pytest.raises(WavediffError, match="weights='int8'"):
        HiFiGANVocoding(generator, cpu, "fp32", "int8", 22050)
