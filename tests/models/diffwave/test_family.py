"""wavediff.models.diffwave.family: what the DiffWave family tells the trainer and ``wavediff
config`` (parameter count, receptive field), PriorGrad's energy scale measured on the training
mels (E = sqrt(n_mels a) for mels whose every band holds magnitude a), and its preview."""
from __future__ import annotations

import pytest
import torch

from wavediff.audio.mel import MelFrontend
from wavediff.models.diffwave import build_model
from wavediff.models.family import get_family


def _mel_of_magnitudes(config, magnitudes):
    """A mel (n_mels, F) whose frame f holds magnitude ``magnitudes[f]`` in every band."""
    n = config.mel.n_mels
    return MelFrontend(config.mel).compress(torch.tensor(magnitudes).repeat(n, 1))


def test_describe_counts_the_given_models_weights(micro_config):
    model = build_model(micro_config)
    facts = get_family("diffwave").describe(model, micro_config)
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    assert facts["receptive_field"] == micro_config.model.receptive_field


def test_priorgrad_measures_its_energy_scale_on_the_training_mels(micro_config):
    family = get_family("diffwave")
    config = micro_config.with_overrides(["diffusion.prior=priorgrad"])
    assert config.diffusion.prior_energy_max == 0
    n = config.mel.n_mels
    mels = [_mel_of_magnitudes(config, [0.05, 2.0 / n]), _mel_of_magnitudes(config, [1.0, 1e-3])]
    measured = family.prepare_config(config, lambda: iter(mels))
    assert measured.diffusion.prior_energy_max == pytest.approx(n ** 0.5, rel=1e-4)   # the second mel's frame 0
    assert measured.model == config.model and measured.train == config.train
    given = config.with_overrides(["diffusion.prior_energy_max=3.5"])
    assert family.prepare_config(given, lambda: iter(mels)) == given                  # a given scale is kept
    assert family.prepare_config(micro_config, lambda: iter(mels)) == micro_config    # the standard prior
    assert family.prepare_config(config, None) == config                              # clip models: no mels


def test_the_preview_is_audio_of_the_asked_length_and_follows_its_generator(micro_config):
    family = get_family("diffwave")
    torch.manual_seed(0)
    model = build_model(micro_config).eval()
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    cond = {"mel": torch.rand(1, micro_config.mel.n_mels, 4)}
    length = 4 * micro_config.mel.hop_length

    def preview(seed):
        return family.preview(model, micro_config, cond, length, torch.Generator().manual_seed(seed),
                              torch.device("cpu"))

    a, b, c = preview(1), preview(1), preview(2)
    assert a.shape == (length,) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b) and not torch.equal(a, c)
