"""wavediff.pipelines: the Vocoder (shapes, seeding, files, mel inputs, loudness, the Griffin-Lim
start and the consistency step) and the Synthesizer (seeding, guidance, the source level)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.audio.griffinlim import MagnitudeProjection
from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS, SamplerConfig, load_config
from wavediff.diffusion.samplers import noised_start, sample
from wavediff.diffusion.schedule import lowest_steps
from wavediff.errors import WavediffError
from wavediff.models.diffwave import build_model
from wavediff.pipelines import Synthesizer, Vocoder, vocode_files, write_mels
from wavediff.training.trainer import Trainer

from helpers import PAPER_RECIPE, SR, clip_config, labelled_tone, random_vocoder_model, tone_sweep


def _vocoder(overrides=(), **options):
    cfg, model = random_vocoder_model(overrides)
    return Vocoder(model, cfg, **options)


@pytest.fixture
def normalising_vocoder():
    cfg = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", "data.normalize=peak",
                               *PAPER_RECIPE])
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    return Vocoder(model, cfg)


@pytest.fixture
def vocoder():
    cfg = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", *PAPER_RECIPE])
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    return Vocoder(model, cfg)


# ---------------------------------------------------------------- generation
def test_a_fixed_seed_gives_identical_clips_whatever_the_batch(class_run):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    a = gen.generate(5, labels="mid", seed=7, batch_size=2)
    assert torch.equal(a, gen.generate(5, labels="mid", seed=7, batch_size=2))   # bit-identical
    b = gen.generate(5, labels=[2] * 5, seed=7, batch_size=5)
    assert torch.allclose(a, b, atol=1e-5)     # other batches: the same noise, float rounding apart
    c = gen.generate(5, labels="mid", seed=8, batch_size=5)
    assert not torch.allclose(a, c)
    assert float(a.abs().max()) <= 1.0


def test_guidance_needs_label_dropout(digits, tmp_path):
    Trainer(clip_config("class", **{"model.label_dropout": "0.0"}), digits, tmp_path / "r",
            progress=False).fit(max_steps=1)
    gen = Synthesizer.from_checkpoint(tmp_path / "r", device="cpu")
    assert not gen.supports_guidance
    with pytest.raises(WavediffError, match="label_dropout > 0"):
        gen.generate(1, labels="low", guidance_scale=2.0)


def test_generator_refuses_a_vocoder_checkpoint(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "v", progress=False).fit(max_steps=1)
    with pytest.raises(WavediffError, match="vocoder"):
        Synthesizer.from_checkpoint(tmp_path / "v", device="cpu")


def test_file_outputs_do_not_depend_on_the_batch_size(tmp_path, random_vocoder):
    cfg, model, _ = random_vocoder
    vocoder = Vocoder(model, cfg)
    (tmp_path / "in").mkdir()
    for i, n in enumerate([3000, 5120, 9000]):
        sf.write(tmp_path / "in" / f"in_{i}.wav", tone_sweep(n / SR, seed=i), SR)
    one = vocode_files(vocoder, [tmp_path / "in"], tmp_path / "b1", batch_size=1, seed=5)
    three = vocode_files(vocoder, [tmp_path / "in"], tmp_path / "b3", batch_size=3, seed=5)
    for a, b in zip(sorted(one), sorted(three)):
        x, y = sf.read(a)[0], sf.read(b)[0]
        assert len(x) == len(y) and np.abs(x - y).max() < 1e-4


@pytest.mark.parametrize("chunk_seconds", ["stream", None])
def test_griffin_lim_start_runs_the_lowest_steps_from_the_noised_estimate(chunk_seconds):
    vocoder = _vocoder(chunk_seconds=chunk_seconds)
    mel = vocoder.mel(tone_sweep(0.4))
    sampler = SamplerConfig(start="griffin-lim", start_steps=2, griffin_lim_iters=4)
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert out.shape == (mel.shape[-1] * 256,) and bool(torch.isfinite(out).all())
    # by hand: the same draws (GL phase, then z, then the steps' noise) through the training module
    g = torch.Generator().manual_seed(0)
    projection = MagnitudeProjection.from_mel(mel, vocoder.frontend)
    estimate = projection.from_noise(g, 4)
    chain = lowest_steps(vocoder.vocoding.chain(6), 2)
    x_start = noised_start(estimate, chain, torch.randn((1, estimate.shape[0]), generator=g)[0])
    with torch.no_grad():
        ref = sample(lambda x, t: vocoder.model(x, t, mel=mel.unsqueeze(0)), (1, x_start.shape[0]), chain,
                     generator=g, x_start=x_start.unsqueeze(0))[0].clamp(-1, 1)
    assert (out - ref).abs().max() < 1e-4
    with pytest.raises(WavediffError, match="1..6"):
        vocoder.vocode(mel, 6, sampler=SamplerConfig(start="griffin-lim", start_steps=7))


def test_consistency_runs_on_the_default_cpu_engine_and_changes_the_output():
    vocoder = _vocoder()   # chunk_seconds='auto': streaming on a CPU, one pass for whole-step corrections
    mels = [vocoder.mel(tone_sweep(0.3, seed=1)), vocoder.mel(tone_sweep(0.5, seed=2))]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    sampler = SamplerConfig(consistency="griffin-lim", consistency_steps=2, consistency_iters=2)
    out = vocoder.vocode(mels, 6, generator=gens(), sampler=sampler)
    plain = vocoder.vocode(mels, 6, generator=gens())
    for o, p, m in zip(out, plain, mels):
        assert o.shape == p.shape == (m.shape[-1] * 256,) and bool(torch.isfinite(o).all())
        assert (o - p).abs().max() > 1e-3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_both_sampler_options_run_on_the_fast_precisions(precision):
    from wavediff.inference.network import int8_available

    if precision == "int8" and not int8_available():
        pytest.skip("this torch build has no oneDNN int8 convolution")
    vocoder = _vocoder(precision=precision)
    mel = vocoder.mel(tone_sweep(0.4))
    sampler = SamplerConfig(start="griffin-lim", start_steps=3, griffin_lim_iters=4, consistency="griffin-lim",
                            consistency_steps=3, consistency_iters=2)
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    ref = _vocoder(precision="fp32").vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert out.shape == ref.shape and bool(torch.isfinite(out).all())
    # the last step ends on the Griffin-Lim projection of each precision's estimate: close, not bit-equal
    assert float((out - ref).abs().mean()) < 0.1 * float(ref.abs().mean()) + 1e-3


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
