"""wavediff.diffusion.prior: PriorGrad's σ from the mel, computed by hand from known mel magnitudes."""
from __future__ import annotations

import pytest
import torch

from wavediff.audio.mel import MelFrontend, mel_config_from_preset
from wavediff.config import load_config
from wavediff.diffusion.prior import frame_std, max_frame_energy, noise_std
from wavediff.errors import WavediffError


def _prior_config(preset="tiny", energy_max=2.0, std_min=0.1):
    return load_config(preset, ["diffusion.prior=priorgrad", f"diffusion.prior_energy_max={energy_max}",
                                f"diffusion.prior_std_min={std_min}"])


@pytest.mark.parametrize("mel_preset", ["diffwave", "hifigan"])
def test_sigma_is_the_clamped_frame_energy_of_known_magnitudes(mel_preset):
    cfg = _prior_config()
    mel_cfg = mel_config_from_preset(mel_preset)
    n = mel_cfg.n_mels
    # every band of frame f holds magnitude a_f: E_f = sqrt(n a_f)
    a = torch.tensor([0.5, 2.0 / n, 2e-4, 8.0 / n, 3.0])
    mags = a.repeat(n, 1)                                           # (n_mels, F)
    mel = MelFrontend(mel_cfg).compress(mags)
    E = torch.sqrt(n * a)
    want = torch.clamp(E / 2.0, 0.1, 1.0)
    got = frame_std(mel, mel_cfg, cfg.diffusion)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert got.min() == pytest.approx(0.1) and got.max() == pytest.approx(1.0)   # both clamps are hit
    per_sample = noise_std(mel, mel_cfg, cfg.diffusion)
    assert per_sample.shape == (mel.shape[-1] * mel_cfg.hop_length,)
    torch.testing.assert_close(per_sample[::mel_cfg.hop_length], want, rtol=1e-4, atol=1e-6)
    assert max_frame_energy([mel[:, :2], mel[:, 2:]], mel_cfg) == pytest.approx(float(E.max()), rel=1e-4)


def test_standard_prior_has_no_sigma_and_priorgrad_needs_its_scale():
    cfg = load_config("base")
    assert noise_std(torch.rand(cfg.mel.n_mels, 3), cfg.mel, cfg.diffusion) is None
    unset = load_config("tiny", ["diffusion.prior=priorgrad"])
    with pytest.raises(WavediffError, match="prior_energy_max"):
        noise_std(torch.rand(cfg.mel.n_mels, 3), unset.mel, unset.diffusion)
