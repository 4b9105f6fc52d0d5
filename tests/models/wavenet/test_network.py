"""WaveNet's network: causality and the receptive field, conditioning, and incremental steps and
generation equal to the full causal forward."""
from __future__ import annotations

import pytest
import torch

from wavediff.config import WaveNetConfig
from wavediff.models.wavenet.generation import generate
from wavediff.models.wavenet.network import IncrementalState, WaveNet


def _net(output="mulaw", kernel=2, mel=True, classes=True, layers=6, cycle=3) -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(output=output, kernel_size=kernel, layers=layers, dilation_cycle=cycle, residual_channels=16,
                        gate_channels=24, skip_channels=16, mixtures=3)
    return WaveNet(cfg, n_mels=5 if mel else None, hop_length=8 if mel else None,
                   num_classes=4 if classes else None).eval().double()


def _inputs(net: WaveNet, length: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if net.config.output == "mulaw":
        return torch.randint(0, 256, (batch, length), generator=g)
    return torch.rand(batch, length, generator=g, dtype=torch.float64) * 2 - 1


def test_the_default_receptive_field_and_the_dilations():
    cfg = WaveNetConfig()
    assert cfg.dilations[:3] == (1, 2, 4) and cfg.dilations[10] == 1 and max(cfg.dilations) == 512
    assert cfg.receptive_field == 1 + 2 * 1023
    assert WaveNetConfig(kernel_size=3, layers=4, dilation_cycle=2).receptive_field == 1 + 2 * (1 + 2 + 1 + 2)


@pytest.mark.parametrize("kernel", [2, 3])
def test_an_input_changes_exactly_the_outputs_of_its_receptive_field(kernel):
    net = _net(kernel=kernel, mel=False, classes=False)
    r = net.receptive_field
    x = _inputs(net, r + 40, batch=1)
    y = net(x)
    x2 = x.clone()
    t0 = 20
    x2[0, t0] = (x2[0, t0] + 100) % 256
    changed = (net(x2) - y).abs().amax(dim=1)[0] > 0
    assert torch.equal(changed.nonzero()[:, 0], torch.arange(t0, t0 + r))


@pytest.mark.parametrize("output,kernel", [("mulaw", 2), ("mulaw", 3), ("mol", 2)])
def test_incremental_steps_equal_the_full_forward(output, kernel):
    net = _net(output, kernel)
    length = net.receptive_field + 30
    x = _inputs(net, length)
    mel = torch.randn(2, 5, length // 8 + 1, dtype=torch.float64)
    label = torch.tensor([1, 3])
    full = net(x, mel=mel, label=label)
    state = IncrementalState(net, 2, net.conditioning(length, mel, label))
    steps = torch.stack([state.step(x[:, t]) for t in range(length)], dim=-1)
    torch.testing.assert_close(steps, full, atol=1e-10, rtol=0)


def test_conditioning_changes_the_output_and_is_required():
    net = _net()
    x = _inputs(net, 40)
    mel = torch.randn(2, 5, 6, dtype=torch.float64)
    a = net(x, mel=mel, label=torch.tensor([0, 0]))
    b = net(x, mel=mel, label=torch.tensor([1, 0]))
    assert (a[0] - b[0]).abs().max() > 1e-6 and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="mel-conditioned"):
        net(x, label=torch.tensor([0, 0]))


@pytest.mark.parametrize("output", ["mulaw", "mol"])
def test_incremental_generation_equals_the_naive_loop(output):
    net = _net(output, mel=True, classes=False)
    mel = torch.randn(2, 5, 30, dtype=torch.float64)
    kwargs = dict(mel=mel, temperature=0.0 if output == "mulaw" else 1.0)
    fast = generate(net, 120, generator=torch.Generator().manual_seed(3), implementation="torch", **kwargs)
    slow = generate(net, 120, generator=torch.Generator().manual_seed(3), implementation="naive", **kwargs)
    assert fast.shape == (2, 120) and fast.abs().max() <= 1
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=0)


def test_seeded_sampling_repeats_and_rows_of_a_batch_differ():
    net = _net(mel=False, classes=True)
    label = torch.tensor([2, 2])
    a = generate(net, 80, label=label, generator=torch.Generator().manual_seed(7), implementation="torch")
    b = generate(net, 80, label=label, generator=torch.Generator().manual_seed(7), implementation="torch")
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_an_unknown_implementation_or_a_negative_temperature_is_refused():
    net = _net(mel=False, classes=False)
    with pytest.raises(ValueError, match="not one of"):
        generate(net, 4, implementation="cuda-graph")
    with pytest.raises(ValueError, match="temperature"):
        generate(net, 4, temperature=-1.0)
    with pytest.raises(ValueError, match="float32 CPU model"):
        generate(net, 4, implementation="native")      # a float64 model


def test_per_row_generators_make_a_row_independent_of_its_batch():
    net = _net(mel=False, classes=True)
    pair = generate(net, 60, label=torch.tensor([1, 2]), implementation="torch",
                    generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    alone = generate(net, 60, label=torch.tensor([2]), implementation="torch",
                     generator=[torch.Generator().manual_seed(2)])
    assert torch.equal(pair[1], alone[0]) and not torch.equal(pair[0], pair[1])


def test_a_span_of_the_conditioning_equals_that_span_of_the_whole():
    net = _net(mel=True, classes=True).float()
    mel, label = torch.randn(2, 5, 30), torch.tensor([1, 3])
    whole = net.conditioning(240, mel, label)
    for start, length in [(0, 7), (5, 50), (100, 61), (200, 40), (0, 240)]:
        span = net.conditioning_span(start, length, mel, label)
        torch.testing.assert_close(span, whole[..., start:start + length], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="fewer than 250"):
        net.conditioning_span(200, 50, mel, label)
