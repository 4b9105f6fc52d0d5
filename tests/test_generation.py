"""Class-conditional and unconditional DiffWave: labels, clip data, training, Synthesizer,
classifier-free guidance and `wavediff generate`. Tiny labelled clips are made here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import default_collate

from wavediff.cli import main
from wavediff.config import load_config
from wavediff.data.datasets import ClipDataset
from wavediff.data.labels import class_order, label_from_path, label_index, read_labelled_entries
from wavediff.diffusion.samplers import sample
from wavediff.errors import WavediffError
from wavediff.pipelines import Synthesizer
from wavediff.training.trainer import Trainer

SR = 8000
CLIP = 1920   # 12 frames x hop 160


def labelled_tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t + rng.uniform(0, 6.28))
    env = np.exp(-((t - seconds / 2) ** 2) / (2 * (seconds / 5) ** 2))
    return (0.4 * x * env + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def write_digits(folder: Path, per_class: int, seed: int = 0) -> Path:
    """Speech Commands names: ``Low_<id>_nohash_0.wav``, ``Mid_...``, ``High_...``; some clips
    shorter and some longer than the 1920-sample clip."""
    folder.mkdir(parents=True, exist_ok=True)
    for c, (word, freq) in enumerate([("Low", 300.0), ("Mid", 900.0), ("High", 2400.0)]):
        for k in range(per_class):
            seconds = (0.18, 0.24, 0.3)[k % 3]
            sf.write(folder / f"{word}_{seed:02d}{c}{k:03d}_nohash_0.wav",
                     labelled_tone(freq, seconds, seed * 1000 + c * 100 + k), SR)
    return folder


def clip_config(conditioning: str, **extra: str):
    over = ["mel.sample_rate=8000", "mel.f_max=4000", "mel.hop_length=160", "mel.n_fft=512", "mel.win_length=512",
            "data.crop_frames=12", "data.val_count=3", "model.residual_layers=3", "model.residual_channels=8",
            "model.dilation_cycle=3", "model.step_hidden_dim=32", "model.step_embedding_dim=16",
            "model.label_embedding_dim=8", "diffusion.num_steps=20", "diffusion.beta_end=0.2",
            "train.batch_size=4", "train.log_every=2", "train.val_every=4", "train.checkpoint_every=4",
            "train.val_batches=1", "train.precision=fp32",
            "data.normalize=none"]   # clips as recorded: the chain's output is compared unscaled
    over += [f"{k}={v}" for k, v in extra.items()]
    preset = "sc09-class-cpu" if conditioning == "class" else "sc09-uncond-cpu"
    if conditioning == "class":
        over.append("model.class_names=[]")
    return load_config(preset, over)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits") / "train", per_class=6)


@pytest.fixture(scope="module")
def class_run(tmp_path_factory, digits) -> Path:
    run = tmp_path_factory.mktemp("runs") / "class"
    Trainer(clip_config("class"), digits, run, progress=False).fit(max_steps=4)
    return run


# ---------------------------------------------------------------- labels and data
def test_labels_come_from_speech_commands_names_and_label_folders(tmp_path):
    assert label_from_path(Path("x/Seven_0a1b2c3d_nohash_0.wav")) == "seven"
    assert label_from_path(tmp_path / "yes" / "a.wav", tmp_path) == "yes"
    assert label_from_path(tmp_path / "a.wav", tmp_path) is None
    assert label_from_path(tmp_path / "deep" / "er" / "a.wav", tmp_path) is None
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        sf.write(tmp_path / word / "clip.wav", labelled_tone(500, 0.1, 0), SR)
    assert sorted(e.label for e in read_labelled_entries(tmp_path)) == ["no", "yes"]


def test_a_manifest_label_column_comes_first(tmp_path):
    sf.write(tmp_path / "Seven_00_nohash_0.wav", labelled_tone(500, 0.1, 0), SR)
    (tmp_path / "m.tsv").write_text("path\tlabel\nSeven_00_nohash_0.wav\tthree\n")
    assert [e.label for e in read_labelled_entries(tmp_path / "m.tsv")] == ["three"]


def test_class_order_and_label_lookup():
    assert class_order(["two", "zero", "nine", "one"]) == ("zero", "one", "two", "nine")
    assert class_order(["10", "9", "1"]) == ("1", "9", "10")
    assert class_order(["yes", "no", "go"]) == ("go", "no", "yes")
    names = ("zero", "one", "two")
    assert label_index("Two", names) == 2 and label_index(1, names) == 1 and label_index("0", names) == 0
    with pytest.raises(WavediffError, match=r"unknown label 'eleven'; known labels: \['zero', 'one', 'two'\]"):
        label_index("eleven", names)
    with pytest.raises(WavediffError, match="out of range"):
        label_index(3, names)


def test_clip_dataset_pads_short_and_crops_long_clips(digits):
    entries = read_labelled_entries(digits)
    ds = ClipDataset(entries, SR, CLIP, labels=list(range(len(entries))))
    lengths = [ds.check(i).num_samples for i in range(len(ds))]
    assert lengths == [sf.info(e.path).frames for e in entries]
    short = next(i for i, e in enumerate(entries) if sf.info(e.path).frames < CLIP)
    clip = ds.clip(short)
    n = sf.info(entries[short].path).frames
    assert torch.equal(clip[n:], torch.zeros(CLIP - n))             # zero-padded at the end
    long = next(i for i, e in enumerate(entries) if sf.info(e.path).frames > CLIP)
    full = torch.from_numpy(sf.read(entries[long].path, dtype="float32")[0])
    g = torch.Generator().manual_seed(0)
    for _ in range(5):                                              # a random crop of the clip
        c = ds.clip(long, g)
        starts = [s for s in range(len(full) - CLIP + 1) if torch.equal(full[s:s + CLIP], c)]
        assert starts
    assert torch.equal(ds.clip(long, random_offset=False), full[:CLIP])
    audio, labels = ds.batch([0, long], g)
    assert audio.shape == (2, CLIP) and labels.tolist() == [0, long]


# ---------------------------------------------------------------- training
def test_class_training_takes_the_data_labels_and_saves_them(class_run):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    assert gen.class_names == ("high", "low", "mid")     # alphabetical: not digit words or integers
    assert gen.clip_samples == CLIP and gen.sample_rate == SR
    assert gen.supports_guidance    # the -cpu class preset trains with label dropout


def test_label_dropout_replaces_labels_with_the_null_label_at_its_rate(digits, tmp_path):
    trainer = Trainer(clip_config("class", **{"model.label_dropout": "0.3"}), digits, tmp_path / "r", progress=False)
    null = trainer.config.model.null_label
    assert null == 3
    idx = list(range(len(trainer.train_set))) * 40
    batch = default_collate([trainer.train_set[(i, 1000 + k)] for k, i in enumerate(idx)])
    _, cond, _, _ = trainer.objective.inputs(batch, training=True)
    rate = float((cond["labels"] == null).float().mean())
    assert abs(rate - 0.3) < 0.04, rate              # 600 draws: 4 standard errors
    kept = cond["labels"] != null
    expected = torch.tensor([trainer.train_set.labels[i] for i in idx])
    assert torch.equal(cond["labels"][kept], expected[kept])
    _, cond, _, _ = trainer.objective.inputs(batch, training=False)
    assert torch.equal(cond["labels"], expected)


def test_unconditional_training_runs_without_labels(digits, tmp_path):
    trainer = Trainer(clip_config("none"), digits, tmp_path / "u", progress=False)
    assert trainer.train_set.labels is None and trainer.model.label_embedding is None
    result = trainer.fit(max_steps=2)
    assert all(np.isfinite(loss) for _, loss in result.losses)
    gen = Synthesizer.from_checkpoint(tmp_path / "u", device="cpu")
    assert gen.class_names == () and gen.generate(2, seed=0).shape == (2, CLIP)
    with pytest.raises(WavediffError, match="unconditional; it takes no labels"):
        gen.generate(2, labels="low")


def test_class_training_refuses_unlabelled_clips(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(6):
        sf.write(folder / f"clip{i}.wav", labelled_tone(400, 0.2, i), SR)
    with pytest.raises(WavediffError, match="have no label"):
        Trainer(clip_config("class"), folder, tmp_path / "r", progress=False)


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


def test_generate_follows_the_reverse_chain_with_per_clip_noise(class_run):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    chain = gen.chain(6)
    labels = torch.tensor([0, 2])
    gens = [torch.Generator().manual_seed(3 + i) for i in range(2)]
    ref = sample(lambda x, t: gen.model(x, t, labels=labels), (2, CLIP), chain, generator=gens).clamp(-1, 1)
    out = gen.generate(2, labels=[0, 2], seed=3)
    assert torch.allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 2.5])
def test_guidance_mixes_conditional_and_null_label_predictions(class_run, w):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    null = gen.config.model.null_label
    labels = torch.tensor([1, 1])

    def guided(x, t):   # the formula, with two separate calls of the network
        eps_u = gen.model(x, t, labels=torch.full_like(labels, null))
        eps_c = gen.model(x, t, labels=labels)
        return eps_u + w * (eps_c - eps_u)

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    ref = sample(guided, (2, CLIP), gen.chain(6), generator=gens).clamp(-1, 1)
    out = gen.generate(2, labels="low", seed=0, guidance_scale=w)
    assert torch.allclose(out, ref, atol=1e-5)


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


def test_cli_generate_writes_labelled_clips_reproducibly(class_run, tmp_path, capsys):
    for out in ("a", "b"):
        assert main(["generate", "--checkpoint", str(class_run), "--n", "3", "--label", "High", "--seed", "4",
                     "--out", str(tmp_path / out)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert files == ["high_0000.wav", "high_0001.wav", "high_0002.wav"]
    assert (tmp_path / "a" / "samples.tsv").read_text().splitlines() == [
        "path\tlabel", "high_0000.wav\thigh", "high_0001.wav\thigh", "high_0002.wav\thigh"]
    for f in files:
        a, sr = sf.read(tmp_path / "a" / f)
        b, _ = sf.read(tmp_path / "b" / f)
        assert sr == SR and len(a) == CLIP and np.array_equal(a, b)
    assert main(["generate", "--checkpoint", str(class_run), "--n", "1", "--label", "eleven",
                 "--out", str(tmp_path / "c")]) == 2
    assert "known labels: ['high', 'low', 'mid']" in capsys.readouterr().err
