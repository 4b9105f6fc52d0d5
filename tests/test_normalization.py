"""Loudness normalisation (``data.normalize='peak'``): training data scaled to a peak, mels
computed from the scaled audio, and vocoders that take the same step on their input and
scale their output back.

References: the closed-form gain ``level / max |x|``, the front-end applied by hand to the
scaled audio, and the unnormalised pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import PAPER_RECIPE, SR, tone_sweep
from wavediff.audio.loudness import peak_gain
from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS, load_config
from wavediff.data.datasets import ClipDataset, VocoderDataset
from wavediff.data.manifest import read_entries
from wavediff.errors import WavediffError
from wavediff.models.diffwave import build_model
from wavediff.pipelines import Vocoder, vocode_files


def test_peak_gain_in_closed_form():
    x = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    assert peak_gain(x) == pytest.approx(0.95 / 0.4)
    assert peak_gain(x, 0.5) == pytest.approx(1.25)
    assert peak_gain(np.zeros(5, dtype=np.float32)) == 1.0
    assert peak_gain(torch.tensor([0.0, 2.0])) == pytest.approx(0.475)


@pytest.mark.parametrize("override, match", [(["data.normalize=rms"], "data.normalize"),
                                             (["data.peak_level=1.5"], "data.peak_level")])
def test_bad_normalisation_settings_are_refused(override, match):
    with pytest.raises(WavediffError, match=match):
        load_config("tiny", override)


def test_vocoder_crops_and_mels_come_from_the_scaled_utterance(tmp_path, audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    cache = tmp_path / "cache"
    plain = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)
    scaled = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache, peak_level=0.95)
    raw = plain.audio(4)
    gain = 0.95 / float(np.abs(raw).max())
    assert scaled.gain(4) == pytest.approx(gain)
    audio, mel = scaled.crop(4, start_frame=3)
    np.testing.assert_allclose(audio.numpy(), raw[3 * 256:11 * 256] * gain, rtol=1e-6)
    want = fe(torch.from_numpy(raw * np.float32(gain)))[:, 3:11]
    torch.testing.assert_close(mel, want)
    assert float(np.abs(scaled.audio(4)).max()) == pytest.approx(0.95, rel=1e-5)
    # both caches live side by side: the normalised entry does not overwrite the plain one
    _, plain_mel = plain.crop(4, start_frame=3)
    assert not torch.allclose(plain_mel, mel)
    torch.testing.assert_close(plain_mel, fe(torch.from_numpy(raw))[:, 3:11])
    assert len(list(cache.glob("*.npy"))) == 2
    # gains survive keep() (what screening does) with the indices remapped
    kept = scaled.keep([4, 0])
    assert kept.gain(0) == pytest.approx(gain)


def test_clips_are_scaled_to_the_peak(audio_dir):
    entries = read_entries(audio_dir)
    ds = ClipDataset(entries, SR, 4000, peak_level=0.5)
    plain = ClipDataset(entries, SR, 4000)
    clip = ds.clip(2, random_offset=False)
    raw = plain.clip(2, random_offset=False)
    full, _ = sf.read(entries[2].path, dtype="float32")
    np.testing.assert_allclose(clip.numpy(), raw.numpy() * 0.5 / np.abs(full).max(), rtol=1e-6)


@pytest.fixture
def normalising_vocoder():
    cfg = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", "data.normalize=peak",
                               *PAPER_RECIPE])
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    return Vocoder(model, cfg)


def test_a_normalising_vocoder_scales_its_input_and_its_output_back(tmp_path, normalising_vocoder):
    voc = normalising_vocoder
    quiet = (tone_sweep(0.3) * 0.05).astype(np.float32)
    gain = voc.input_gain(quiet)
    assert gain == pytest.approx(0.95 / float(np.abs(quiet).max()))
    torch.testing.assert_close(voc.mel(quiet), voc.frontend(torch.from_numpy(quiet * np.float32(gain))))
    batch = np.stack([quiet, quiet * 4])
    mels = voc.mel(batch)
    torch.testing.assert_close(mels[0], mels[1], rtol=1e-4, atol=1e-4)   # the same after normalisation
    out = voc.vocode_audio(quiet, generator=torch.Generator().manual_seed(0))
    direct = voc.vocode(voc.mel(quiet), 6, generator=torch.Generator().manual_seed(0))[: quiet.shape[0]]
    torch.testing.assert_close(out, direct / gain)
    sf.write(tmp_path / "q.wav", quiet, SR)
    (written,) = vocode_files(voc, [tmp_path / "q.wav"], tmp_path / "out", seed=0)
    saved, _ = sf.read(written, dtype="float32")
    np.testing.assert_allclose(saved, (direct / gain).numpy(), atol=1e-4)   # 16-bit file


def test_a_plain_vocoder_leaves_its_input_as_it_is(normalising_vocoder):
    cfg = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", *PAPER_RECIPE])
    voc = Vocoder(normalising_vocoder.model, cfg)
    quiet = (tone_sweep(0.3) * 0.05).astype(np.float32)
    assert voc.input_gain(quiet) == 1.0
    torch.testing.assert_close(voc.mel(quiet), voc.frontend(quiet))


def test_a_generation_model_on_normalised_clips_records_and_restores_the_source_level(tmp_path):
    """Training measures the median peak of the clips as recorded; generated clips are scaled from
    ``peak_level`` back to it (reference: the same network's clips without normalisation)."""
    from test_generation import clip_config, labelled_tone
    from wavediff.pipelines import Synthesizer
    from wavediff.training.trainer import Trainer

    folder = tmp_path / "clips"
    folder.mkdir()
    peaks = [0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8]
    for i, peak in enumerate(peaks):
        x = labelled_tone(500.0, 0.25, i)
        sf.write(folder / f"{('Low', 'High')[i % 2]}_{i:03d}_nohash_0.wav", x * np.float32(peak / np.abs(x).max()),
                 8000, subtype="FLOAT")
    cfg = clip_config("class", **{"data.normalize": "peak", "data.val_count": "0", "data.val_fraction": "0"})
    trainer = Trainer(cfg, folder, tmp_path / "run", progress=False)
    assert trainer.config.data.source_peak == pytest.approx(float(np.median(peaks)), rel=1e-5)
    trainer.fit(max_steps=2)
    gen = Synthesizer.from_checkpoint(tmp_path / "run", device="cpu")
    assert gen.config.data.source_peak == pytest.approx(0.4, rel=1e-5)
    assert gen.output_gain == pytest.approx(0.4 / 0.95, rel=1e-5)
    plain_cfg = load_config("tiny", []).from_dict({**gen.config.to_dict(),
                                                   "data": {**gen.config.data.__dict__, "normalize": "none"}})
    plain = Synthesizer(gen.model, plain_cfg)
    assert plain.output_gain == 1.0
    out = gen.generate(3, labels="low", seed=5)
    ref = plain.generate(3, labels="low", seed=5)
    inside = ref.abs() < 1          # the plain clips are clamped to [-1, 1]; the scaled ones after scaling
    assert inside.float().mean() > 0.2
    torch.testing.assert_close(out[inside], ref[inside] * (0.4 / 0.95), rtol=1e-5, atol=1e-6)
    assert float(out.abs().max()) <= 1.0
    # a resumed run keeps the measured level rather than measuring again on different data
    resumed = Trainer(cfg, folder, tmp_path / "run", resume=True, progress=False)
    assert resumed.config.data.source_peak == pytest.approx(0.4, rel=1e-5)


def test_source_peak_outside_its_range_is_refused():
    with pytest.raises(WavediffError, match="data.source_peak"):
        load_config("tiny", ["data.source_peak=1.5"])
