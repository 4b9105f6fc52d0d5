"""wavediff.models.diffwave.objective: DiffWave's training objective: one phase over every weight,
Algorithm 1's forward process and loss in closed form, per-item draws that do not depend on the
batch, and label dropout at its rate."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from wavediff.diffusion.schedule import linear_schedule
from wavediff.models.diffwave.objective import DiffWaveObjective
from wavediff.models.diffwave import build_model
from wavediff.training.trainer import Trainer

from helpers import clip_config


def test_label_dropout_replaces_labels_with_the_null_label_at_its_rate(digits, tmp_path):
    trainer = Trainer(clip_config("class", **{"model.label_dropout": "0.3"}), digits, tmp_path / "r", progress=False)
    null = trainer.config.model.null_label
    assert null == 3
    idx = list(range(len(trainer.train_set))) * 40
    batch = default_collate([trainer.train_set[(i, 1000 + k)] for k, i in enumerate(idx)])
    _, cond, _, _, _ = trainer.objective.inputs(batch, training=True)
    rate = float((cond["labels"] == null).float().mean())
    assert abs(rate - 0.3) < 0.04, rate              # 600 draws: 4 standard errors
    kept = cond["labels"] != null
    expected = torch.tensor([trainer.train_set.labels[i] for i in idx])
    assert torch.equal(cond["labels"][kept], expected[kept])
    _, cond, _, _, _ = trainer.objective.inputs(batch, training=False)
    assert torch.equal(cond["labels"], expected)


class _ZeroDenoiser(torch.nn.Module):
    """Predicts no noise and records what it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, **cond):
        self.calls.append((x.detach().clone(), t.clone(), cond))
        return torch.zeros_like(x)


def _batch(config, seeds, length_frames=6):
    g = torch.Generator().manual_seed(0)
    hop = config.mel.hop_length
    return {"audio": 0.5 * torch.randn(len(seeds), length_frames * hop, generator=g),
            "mel": torch.rand(len(seeds), config.mel.n_mels, length_frames, generator=g),
            "seed": torch.tensor(seeds)}


def test_one_phase_holds_every_weight(micro_config):
    model = build_model(micro_config)
    phases = DiffWaveObjective(micro_config, torch.device("cpu")).phases(model)
    assert [p.name for p in phases] == ["denoiser"]
    assert {id(p) for p in phases[0].parameters} == {id(p) for p in model.parameters()}


def test_the_loss_is_algorithm_1_in_closed_form(micro_config):
    """With a denoiser that predicts zeros, the L2 loss is the mean of eps^2, where eps is recovered
    from the x_t and t the network was given: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    objective = DiffWaveObjective(micro_config, torch.device("cpu"))
    batch = _batch(micro_config, list(range(100, 164)))
    net = _ZeroDenoiser()
    loss = objective.loss(net, batch, "denoiser", training=True)
    (x_t, t, cond), = net.calls
    torch.testing.assert_close(cond["mel"], batch["mel"])
    schedule = linear_schedule(micro_config.diffusion.num_steps, micro_config.diffusion.beta_start,
                               micro_config.diffusion.beta_end)
    assert bool((t == t.round()).all())                          # training steps are whole
    abar = schedule.alphas_cumprod[t.long()].unsqueeze(-1)
    eps = (x_t - abar.sqrt() * batch["audio"]) / (1 - abar).sqrt()
    assert float(loss) == pytest.approx(float((eps ** 2).mean()), rel=1e-4)
    assert abs(float(eps.mean())) < 0.02 and float(eps.var()) == pytest.approx(1.0, abs=0.03)   # N(0, 1)
    assert len(set(t.tolist())) > 20                     # t drawn per item


def test_an_items_draws_do_not_depend_on_the_rest_of_its_batch(micro_config):
    objective = DiffWaveObjective(micro_config, torch.device("cpu"))
    both = _batch(micro_config, [11, 12])
    whole = objective.loss(_ZeroDenoiser(), both, "denoiser", training=True)
    halves = [objective.loss(_ZeroDenoiser(), {k: v[i:i + 1] for k, v in both.items()}, "denoiser", training=True)
              for i in range(2)]
    assert float(whole) == pytest.approx((float(halves[0]) + float(halves[1])) / 2, rel=1e-6)
