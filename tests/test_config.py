"""wavediff.config: the presets hold the paper's hyper-parameters and the measured recipes; JSON
round trips, overrides, and each bad setting refused with its name."""
from __future__ import annotations

import json
import math

import pytest

from wavediff.config import PRESETS, RunConfig, SamplerConfig, load_config
from wavediff.errors import WavediffError


def test_presets_have_the_paper_hyperparameters():
    base, large, sc09 = load_config("base"), load_config("large"), load_config("sc09-uncond")
    assert (base.model.residual_layers, base.model.residual_channels, base.model.dilation_cycle) == (30, 64, 10)
    assert (base.diffusion.num_steps, base.diffusion.beta_start, base.diffusion.beta_end) == (50, 1e-4, 0.05)
    assert (large.model.residual_channels, large.diffusion.num_steps, large.diffusion.beta_end) == (128, 200, 0.02)
    assert (sc09.model.residual_layers, sc09.model.residual_channels, sc09.model.dilation_cycle) == (36, 256, 12)
    assert sc09.model.conditioning == "none" and sc09.mel.sample_rate == 16000
    assert sc09.data.crop_frames * sc09.mel.hop_length == 16000  # whole 1 s clips
    assert base.train.learning_rate == 2e-4 and base.train.batch_size == 16
    assert "tiny" in PRESETS
    for paper in (base, large, sc09):   # the paper's recipe: standard prior, plain chain
        assert paper.diffusion.prior == "standard" and paper.sampler.consistency == "none"


def test_tiny_has_the_measured_recipe():
    """docs/results.md's equal-budget ablation: PriorGrad's prior and the consistency step at every step."""
    tiny = load_config("tiny")
    assert tiny.diffusion.prior == "priorgrad" and tiny.diffusion.prior_energy_max == 0   # measured at training
    assert (tiny.sampler.consistency, tiny.sampler.consistency_steps, tiny.sampler.consistency_iters) == \
        ("griffin-lim", 50, 16)
    paper = load_config("tiny", ["diffusion.prior=standard", "sampler.consistency=none"])
    assert paper.diffusion.prior == "standard" and not paper.sampler.uses_mel_inversion


def test_sc09_class_and_cpu_presets():
    paper, cls = load_config("sc09-uncond"), load_config("sc09-class")
    assert cls.model.conditioning == "class" and cls.model.num_classes == 10
    assert cls.model.class_names[0] == "zero" and cls.model.class_names[-1] == "nine"
    assert cls.model.label_dropout == 0.0 and cls.model.null_label is None       # the paper's model
    assert (cls.model.residual_layers, cls.model.residual_channels, cls.diffusion.num_steps) == (36, 256, 200)
    for name in ("sc09-uncond-cpu", "sc09-class-cpu"):
        cpu = load_config(name)
        assert cpu.clip_samples == 16000 and cpu.diffusion == paper.diffusion
        # the paper's rule: receptive field about twice the clip
        assert cpu.model.receptive_field == 2 * (2 ** 14 - 1) + 1 >= 2 * cpu.clip_samples
    assert load_config("sc09-class-cpu").model.null_label == 10
    # peak-normalised clips where measured better (the CPU digit presets); as recorded in the paper's
    assert load_config("sc09-class-cpu").data.normalize == "peak" == load_config("sc09-uncond-cpu").data.normalize
    assert paper.data.normalize == "none"


def test_a_fast_schedule_that_cannot_be_aligned_is_refused_at_load():
    # (1-1e-4)(1-1e-3)(0.99)(0.95)(0.8)(0.3) = 0.2255 is below alpha-bar_T = 0.280 (paper notes) of T=50
    with pytest.raises(WavediffError, match=r"gamma-bar=0.2255, below alpha-bar_T=0.2797"):
        load_config("base", ["diffusion.fast_schedule=[1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7]"])
    assert load_config("base", ["diffusion.fast_schedule=[]"]).diffusion.fast_schedule == ()
    assert load_config("large").diffusion.fast_schedule[-1] == 0.7     # aligns with T=200 (alpha-bar_T 0.132)


def test_label_dropout_needs_class_conditioning():
    with pytest.raises(WavediffError, match="label_dropout=0.1 needs model.conditioning='class'"):
        load_config("sc09-uncond", ["model.label_dropout=0.1"])
    with pytest.raises(WavediffError, match=r"label_dropout=1.0 must be in \[0, 1\)"):
        load_config("sc09-class", ["model.label_dropout=1.0"])
    with pytest.raises(WavediffError, match="3 names but model.num_classes=10"):
        load_config("sc09-class", ["model.class_names=[a, b, c]"])


def test_json_round_trip_and_overrides():
    cfg = load_config("base", ["train.learning_rate=1e-3", "model.residual_channels=32"])
    assert cfg.train.learning_rate == 1e-3 and cfg.model.residual_channels == 32
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_config_file_with_preset_and_partial_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: large\ntrain:\n  batch_size: 4\n")
    cfg = load_config(path)
    assert cfg.model.residual_channels == 128 and cfg.train.batch_size == 4


@pytest.mark.parametrize("bad, message", [
    ("nonexistent", "unknown preset"),
])
def test_unknown_preset_names_the_allowed_ones(bad, message):
    with pytest.raises(WavediffError, match=message) as err:
        load_config(bad)
    assert "base" in str(err.value) and "tiny" in str(err.value)


@pytest.mark.parametrize("preset, override, message", [
    ("base", "train.no_such_key=1", "unknown key 'no_such_key'"),
    ("base", "model.kernel_size=4", "must be odd"),
    ("base", "diffusion.loss=l3", "choose one of"),
    ("base", "mel.f_max=30000", "f_max"),
    ("base", "nodot", "section.key=value"),
    ("tiny", "data.normalize=rms", "data.normalize"),
    ("tiny", "data.peak_level=1.5", "data.peak_level"),
    ("tiny", "data.source_peak=1.5", "data.source_peak"),
    ("tiny", "diffusion.prior=gaussian", "diffusion.prior"),
    ("tiny", "diffusion.prior_std_min=0", "prior_std_min"),
    ("tiny", "diffusion.prior_energy_max=-1", "prior_energy_max"),
    ("sc09-class-cpu", "diffusion.prior=priorgrad", "conditioning='mel'"),   # PriorGrad needs a mel vocoder
    ("tiny", "train.spectral_loss_weight=-0.1", "spectral_loss_weight"),
    ("tiny", "train.lr_decay=0", r"train.lr_decay=0.0 must be in \(0, 1\]"),
    ("tiny", "train.lr_decay=1.5", "lr_decay"),
])
def test_invalid_values_are_named(preset, override, message):
    with pytest.raises(WavediffError, match=message):
        load_config(preset, [override])


def test_sampler_settings_are_checked_and_recorded():
    cfg = load_config("tiny", ["sampler.start=griffin-lim", "sampler.start_steps=2"])
    assert cfg.sampler.start == "griffin-lim" and cfg.sampler.uses_mel_inversion
    again = type(cfg).from_json(cfg.to_json()) if hasattr(type(cfg), "from_json") else type(cfg).from_dict(
        cfg.to_dict())
    assert again.sampler == cfg.sampler
    legacy = cfg.to_dict()
    del legacy["sampler"]     # checkpoints written before the section existed
    assert type(cfg).from_dict(legacy).sampler == SamplerConfig()
    with pytest.raises(WavediffError, match="sampler.start"):
        load_config("tiny", ["sampler.start=gl"])
    with pytest.raises(WavediffError, match="consistency_steps"):
        load_config("tiny", ["sampler.consistency_steps=0"])
    with pytest.raises(WavediffError, match="conditioning='mel'"):
        load_config("sc09-class-cpu", ["sampler.consistency=griffin-lim"])
    assert SamplerConfig().with_overrides(["consistency=griffin-lim"]).consistency == "griffin-lim"


@pytest.mark.parametrize("override, message", [
    ("hifigan.upsample_kernels=[16,16,4]", "one kernel per rate"),
    ("hifigan.upsample_kernels=[16,16,4,1]", "kernels at least their rate"),
    ("hifigan.resblock=3", r"hifigan.resblock=3 is not allowed; choose one of \[1, 2\]"),
    ("hifigan.resblock_kernels=[3,7]", "one list per kernel"),
    ("hifigan.resblock_kernels=[3,6,11]", "must be odd"),
    ("hifigan.initial_channels=8", "initial_channels=8 must be >= 16"),
    ("hifigan.discriminator_width=0.3", "multiple of 1/8"),
    ("hifigan.periods=[1,2]", "each >= 2"),
])
def test_bad_hifigan_settings_are_named(override, message):
    with pytest.raises(WavediffError, match=message):
        load_config("tiny", [override])


def test_the_hifigan_section_defaults_to_v1_and_round_trips():
    cfg = load_config("tiny", ["hifigan.upsample_rates=[8,8,4]", "hifigan.upsample_kernels=[16,16,8]",
                               "hifigan.resblock=2", "hifigan.resblock_dilations=[[1,2],[2,6],[3,12]]",
                               "hifigan.resblock_kernels=[3,5,7]", "hifigan.initial_channels=256"])
    assert cfg.hifigan.hop_length == 256 and cfg.hifigan.resblock_dilations == ((1, 2), (2, 6), (3, 12))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    older = cfg.to_dict()
    del older["hifigan"]                       # checkpoints written before the section existed
    assert RunConfig.from_dict(older).hifigan == load_config("tiny").hifigan
    assert load_config("tiny").hifigan.upsample_rates == (8, 8, 2, 2)      # the paper's V1


def test_hifigan_rates_are_derived_from_a_new_hop_unless_set():
    cfg = load_config("hifigan-v1", ["mel.hop_length=200"])
    rates = cfg.hifigan.upsample_rates
    assert len(rates) == 4 and math.prod(rates) == 200 and all(2 <= r <= 16 for r in rates)
    assert cfg.hifigan.upsample_kernels == tuple(2 * r for r in rates)
    assert load_config("hifigan-v3", ["mel.hop_length=300"]).hifigan.upsample_rates == (10, 10, 3)
    assert load_config("hifigan-v1").hifigan.upsample_rates == (8, 8, 2, 2)       # the preset's hop: untouched
    with pytest.raises(WavediffError, match=r"mel.hop_length=34 cannot be made by 4 HiFi-GAN upsampling stages"):
        load_config("hifigan-v1", ["mel.hop_length=34"])                        # 2 x 17: 17 is above 16
    explicit = load_config("hifigan-v1", ["mel.hop_length=200", "hifigan.upsample_rates=[8,8,2,2]"])
    assert explicit.hifigan.upsample_rates == (8, 8, 2, 2)                       # left for the family to refuse
