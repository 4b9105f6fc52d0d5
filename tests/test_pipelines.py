from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import PAPER_RECIPE, SR, tone_sweep
from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS, load_config
from wavediff.errors import WavediffError
from wavediff.models.diffwave import build_model
from wavediff.pipelines import Vocoder, vocode_files, write_mels


@pytest.fixture
def vocoder():
    cfg = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", *PAPER_RECIPE])
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    return Vocoder(model, cfg)


def test_vocode_shapes_and_seeding(vocoder):
    mel = vocoder.mel(tone_sweep(0.3))
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (mel.shape[-1] * 256,) and out.abs().max() <= 1.0
    batch = vocoder.vocode(torch.stack([mel, mel]), 50, generator=torch.Generator().manual_seed(0))
    assert batch.shape == (2, mel.shape[-1] * 256)
    again = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(WavediffError, match="steps=51"):
        vocoder.vocode(mel, 51)


def test_wrong_mels_are_refused_with_the_reason(vocoder):
    with pytest.raises(WavediffError, match=r"expects \(B, 80, frames\)"):
        vocoder.vocode(torch.rand(64, 20))
    hifigan_mel = MelFrontend(MEL_PRESETS["hifigan"])(torch.from_numpy(tone_sweep(0.3)))
    with pytest.raises(WavediffError, match="natural-log mel"):
        vocoder.vocode(hifigan_mel)


def test_files_are_batched_and_keep_their_lengths(tmp_path, vocoder):
    lengths = [3000, 5000, 12345]
    for i, n in enumerate(lengths):
        sf.write(tmp_path / f"in_{i}.wav", tone_sweep(n / SR, seed=i)[:n], SR)
    written = vocode_files(vocoder, [tmp_path], tmp_path / "out", steps=6, batch_size=2)
    got = {p.name: sf.info(p).frames for p in written}
    assert got == {f"in_{i}.wav": n for i, n in enumerate(lengths)}


def test_mel_files_with_sidecars(tmp_path, vocoder):
    sf.write(tmp_path / "a.wav", tone_sweep(0.3), SR)
    (mel_path,) = write_mels([tmp_path / "a.wav"], tmp_path / "mels", frontend="diffwave")
    written = vocode_files(vocoder, [mel_path], tmp_path / "out")
    assert sf.info(written[0]).frames == np.load(mel_path).shape[-1] * 256
    meta = json.loads(mel_path.with_suffix(".json").read_text())
    meta["wavediff_mel_frontend"]["sample_rate"] = 16000
    mel_path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WavediffError, match="sample_rate=16000"):
        vocode_files(vocoder, [mel_path], tmp_path / "out")


def test_audio_at_another_rate_needs_resample(tmp_path, vocoder):
    sf.write(tmp_path / "b.wav", tone_sweep(0.3, sr=16000), 16000)
    with pytest.raises(WavediffError, match="16000 Hz; expected 22050 Hz"):
        vocode_files(vocoder, [tmp_path / "b.wav"], tmp_path / "out")
    (out,) = vocode_files(vocoder, [tmp_path / "b.wav"], tmp_path / "out", resample=True)
    assert abs(sf.info(out).frames - round(0.3 * SR)) <= 1
