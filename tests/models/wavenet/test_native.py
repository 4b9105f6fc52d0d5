"""The native WaveNet kernel against the torch network: teacher-forced outputs equal to the full
causal forward, greedy generation equal to the torch loop, draws that follow the head's
distribution (probability integral transform), seeding, batching and thread counts."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.config import WaveNetConfig
from wavediff.models.wavenet import native
from wavediff.models.wavenet.generation import generate
from wavediff.models.wavenet.native import NativeWaveNet
from wavediff.models.wavenet.network import WaveNet

pytestmark = pytest.mark.skipif(native.load() is None, reason="the native WaveNet kernel cannot be built here")


def _net(output="mulaw", kernel=2, mel=True, classes=True, residual=16, gate=24, skip=20) -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(output=output, kernel_size=kernel, layers=6, dilation_cycle=3, residual_channels=residual,
                        gate_channels=gate, skip_channels=skip, mixtures=3)
    return WaveNet(cfg, n_mels=5 if mel else None, hop_length=8 if mel else None,
                   num_classes=4 if classes else None).eval()


def _inputs(net: WaveNet, batch: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if net.config.output == "mulaw":
        return torch.randint(0, 256, (batch, length), generator=g)
    return torch.rand(batch, length, generator=g) * 2 - 1


# sizes with vector tails (16/24/20), full vectors (64/128/64), and the mixture head (30 outputs)
@pytest.mark.parametrize("output,kernel,sizes", [("mulaw", 2, (16, 24, 20)), ("mulaw", 3, (64, 128, 64)),
                                                 ("mol", 2, (16, 24, 20))])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_teacher_forced_outputs_equal_the_full_forward(output, kernel, sizes, threads):
    net = _net(output, kernel, residual=sizes[0], gate=sizes[1], skip=sizes[2])
    batch, length = 3, net.receptive_field + 40
    x = _inputs(net, batch, length)
    mel, label = torch.randn(batch, 5, length // 8 + 1), torch.tensor([1, 3, 0])
    with torch.no_grad():
        full = net(x, mel=mel, label=label)                       # (B, Q, L), the reference
        cond = net.conditioning(length, mel, label)
    kernel_ = NativeWaveNet(net, batch, x[:, 0], threads=threads)
    proj = kernel_.conditioning(cond)
    forced = torch.cat([x[:, 1:], x[:, :1]], dim=1)             # input t + 1 follows step t
    half = length // 2                                          # two calls: the queues carry over
    _, first = kernel_.run(half, proj[:, :half].contiguous(), forced=forced[:, :half], keep_outputs=True)
    _, second = kernel_.run(length - half, proj[:, half:].contiguous(), forced=forced[:, half:], keep_outputs=True)
    outputs = torch.cat([first, second], dim=1).permute(0, 2, 1)
    torch.testing.assert_close(outputs, full, atol=1e-5, rtol=1e-5)


def test_a_batch_beyond_one_register_block_matches_the_full_forward():
    net = _net(kernel=2, residual=64, gate=128, skip=64)
    batch, length = 6, net.receptive_field + 20           # rows in blocks of 4, then 2
    x = _inputs(net, batch, length)
    mel, label = torch.randn(batch, 5, length // 8 + 1), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        full = net(x, mel=mel, label=label)
        cond = net.conditioning(length, mel, label)
    kernel_ = NativeWaveNet(net, batch, x[:, 0], threads=2)
    forced = torch.cat([x[:, 1:], x[:, :1]], dim=1)
    _, outputs = kernel_.run(length, kernel_.conditioning(cond), forced=forced, keep_outputs=True)
    torch.testing.assert_close(outputs.permute(0, 2, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mel,classes", [(True, False), (False, True), (False, False)])
def test_greedy_generation_equals_the_torch_loop(mel, classes):
    net = _net(mel=mel, classes=classes)
    with torch.no_grad():   # larger inputs and logits, so the most likely class changes along the way
        net.input.weight.mul_(3.0)
        net.head[3].weight.mul_(20.0)
    kwargs = dict(mel=torch.randn(2, 5, 25) if mel else None, label=torch.tensor([1, 2]) if classes else None,
                  batch=2, temperature=0.0)
    fast = generate(net, 200, implementation="native", **kwargs)
    ref = generate(net, 200, implementation="torch", **kwargs)
    assert torch.equal(fast, ref) and fast.unique().numel() >= 2


def test_seeds_threads_and_batching():
    net = _net(mel=False, classes=True)
    label = torch.tensor([1, 2, 1])

    def run(seed, threads=2, labels=label):
        return generate(net, 300, label=labels, generator=torch.Generator().manual_seed(seed),
                        implementation="native", threads=threads)
    a = run(5)
    assert torch.equal(a, run(5)) and not torch.equal(a, run(6))
    assert not torch.equal(a[0], a[2])                           # same label, own draws per row
    assert torch.equal(a, run(5, threads=1))                     # a thread count changes no arithmetic
    single = NativeWaveNet(net, 1, net.start_input(1), seed=[11])   # a row = that row alone
    batched = NativeWaveNet(net, 3, net.start_input(3), seed=[9, 10, 11])
    proj1 = single.conditioning(net.conditioning(1, label=label[:1]))
    proj3 = batched.conditioning(net.conditioning(1, label=label))
    one, _ = single.run(300, proj1, constant=True)
    three, _ = batched.run(300, proj3, constant=True)
    assert torch.equal(one[0], three[2])
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]    # per-row generators, in generate()
    pair = generate(net, 300, label=label[:2], generator=gens, implementation="native")
    alone = generate(net, 300, label=label[1:2], generator=[torch.Generator().manual_seed(2)], implementation="native")
    assert torch.equal(pair[1], alone[0])


def _pit_summary(values: torch.Tensor) -> tuple[float, float]:
    """Mean and the largest decile deviation of values that should be uniform on [0, 1]."""
    counts = torch.histc(values, bins=10, min=0.0, max=1.0) / values.numel()
    return float(values.mean()), float((counts - 0.1).abs().max())


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_mulaw_draws_follow_the_tempered_softmax(temperature):
    net = _net(mel=False, classes=False)
    with torch.no_grad():
        net.head[3].weight.mul_(40.0)          # spread the logits so the draws are not near uniform
    kernel_ = NativeWaveNet(net, 4, net.start_input(4), seed=3, temperature=temperature)
    drawn, logits = kernel_.run(3000, keep_outputs=True)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    k = drawn.long().unsqueeze(-1)
    upper, mass = cdf.gather(-1, k)[..., 0], probs.gather(-1, k)[..., 0]
    # randomised PIT: uniform on [0, 1] exactly when each class is drawn with its probability
    pit = (upper - mass * torch.rand(upper.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    mean, worst = _pit_summary(pit.float().flatten())
    assert abs(mean - 0.5) < 0.015 and worst < 0.015      # 12,000 draws: sd of a decile ~0.003
    assert float(probs.max(-1).values.mean()) > 0.2        # the test distribution is far from uniform


def test_mol_draws_follow_the_mixture():
    net = _net("mol", mel=False, classes=False)
    with torch.no_grad():   # log-scales around -3 keep most mass inside [-1, 1]
        net.head[3].bias[6:9] = -3.0
    kernel_ = NativeWaveNet(net, 4, net.start_input(4), seed=4)
    drawn, params = kernel_.run(3000, keep_outputs=True)
    logits, means, log_scales = params.double().split(3, dim=-1)
    s = torch.exp(log_scales.clamp(min=-7.0))
    weights = torch.softmax(logits, dim=-1)

    def cdf(x):
        return (weights * torch.sigmoid((x.unsqueeze(-1) - means) / s)).sum(-1)
    x = drawn.double()
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # samples clipped to +-1 carry the mass beyond: a uniform point of it
    pit = torch.where(x >= 1.0, cdf(x) + (1 - cdf(x)) * u, torch.where(x <= -1.0, cdf(x) * u, cdf(x)))
    assert float(((x > -1) & (x < 1)).double().mean()) > 0.9
    mean, worst = _pit_summary(pit.float().flatten())
    assert abs(mean - 0.5) < 0.015 and worst < 0.015


def test_bad_arguments_are_refused():
    net = _net(mel=True, classes=False)
    kernel_ = NativeWaveNet(net, 2, net.start_input(2))
    with pytest.raises(ValueError, match="conditioned"):
        kernel_.run(10)
    with pytest.raises(ValueError, match="must be contiguous float32"):
        kernel_.run(10, torch.zeros(2, 9, 6 * 24))
    with pytest.raises(ValueError, match="outside 0 .. 255"):
        kernel_.run(3, torch.zeros(2, 3, 6 * 24), forced=torch.tensor([[1.0, 300.0, 2.0], [1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="2 seeds for a batch of 3"):
        NativeWaveNet(net, 3, net.start_input(3), seed=[1, 2])
    with pytest.raises(ValueError, match="float32 CPU"):
        NativeWaveNet(_net().double(), 1, torch.zeros(1))
    assert math.isclose(float(kernel_.run(1, torch.zeros(2, 1, 6 * 24))[0].max()) % 1, 0.0)   # classes
