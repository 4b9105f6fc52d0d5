"""wavediff.pretrained: the vocoder shipped inside the package: found offline, its card complete,
loads and vocodes, its chains at 6 and 3 steps (its quality is measured by benchmarks/recipe.py and recorded in the card, not here)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from wavediff.config import RunConfig
from wavediff.errors import WavediffError
from wavediff.pipelines import Vocoder
from wavediff.pretrained import DEFAULT_VOCODER, bundled_model, bundled_models

from helpers import SR, tone_sweep


def test_the_default_vocoder_is_bundled_with_a_complete_card():
    names = [m.name for m in bundled_models()]
    assert DEFAULT_VOCODER in names
    model = bundled_model()
    card = model.card
    for key in ("summary", "training_data", "licences", "budget", "scores", "row", "sampler", "evaluation"):
        assert card.get(key), key
    assert any(row["system"] == card["row"] for row in card["scores"])
    assert any(row["system"].startswith("Griffin-Lim") for row in card["scores"])
    config = RunConfig.from_dict(json.loads((model.path / "config.json").read_text()))
    assert config.model.conditioning == "mel"
    assert (model.path / "model.safetensors").stat().st_size < 16 * 2 ** 20   # a few MB, package data
    with pytest.raises(WavediffError, match="bundled"):
        bundled_model("no-such-model")


def test_the_bundled_vocoder_keeps_appendix_b_at_6_steps_and_its_searched_schedule_at_3():
    """--steps 6 is the paper's Appendix B schedule (T = 50); --steps 3 the schedule searched for
    the model (its card says so), not the strided chain; other step counts stay strided."""
    from wavediff.models.diffwave.vocoding import describe_chain, reverse_chain

    model = bundled_model()
    config = RunConfig.from_dict(json.loads((model.path / "config.json").read_text()))
    six = reverse_chain(config, 6)
    assert six.etas.tolist() == pytest.approx([1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5])
    three = reverse_chain(config, 3)
    assert three.etas.tolist() == pytest.approx([1e-4, 0.0175, 0.710], rel=2e-3)
    assert "diffusion.schedules" in describe_chain(config, 3) and "searched" in model.card["schedules_note"]
    assert "strided" in describe_chain(config, 4)


def test_the_bundled_vocoder_vocodes_a_synthetic_signal_offline():
    vocoder = Vocoder.pretrained(device="cpu")
    audio = tone_sweep(0.7)
    mel = vocoder.mel(audio)
    out = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))
    assert out.shape == (mel.shape[-1] * vocoder.hop_length,)
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) <= 1.0
    assert float(out.abs().max()) > 1e-3     # not silence


def test_cli_lists_the_models_and_vocodes_without_a_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "wavediff", "models"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert DEFAULT_VOCODER in proc.stdout and "budget" in proc.stdout and "PESQ-WB" in proc.stdout
    sf.write(tmp_path / "a.wav", tone_sweep(0.5), SR)
    proc = subprocess.run([sys.executable, "-m", "wavediff", "vocode", "--input", str(tmp_path / "a.wav"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    wav, sr = sf.read(tmp_path / "out" / "a.wav")
    assert sr == SR and wav.shape[0] == tone_sweep(0.5).shape[0]
