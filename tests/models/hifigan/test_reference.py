"""wavediff.models.hifigan.reference: a generator file in the authors' layout ({'generator':
state_dict}, weight_g / weight_v per convolution), made here, loads without unpickling and
vocodes exactly as the architecture written out below with plain functional ops over the
authors' tensor names (the reference); the same weights saved without weight norm load too.
`wavediff import-hifigan` turns such a file into a checkpoint that vocodes as the reference and
starts a training run (--init-from) with fresh discriminators."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wavediff.cli import main
from wavediff.config import HiFiGANConfig, load_config
from wavediff.errors import WavediffError
from wavediff.models.hifigan.reference import read_reference_generator
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

CONFIG = HiFiGANConfig(upsample_rates=(4, 2), upsample_kernels=(8, 4), initial_channels=16, resblock=1,
                       resblock_kernels=(3, 5), resblock_dilations=((1, 3), (1, 2)))
N_MELS = 10


def _weight_normed(out_c, in_c, k, g, transposed=False):
    shape = (in_c, out_c, k) if transposed else (out_c, in_c, k)
    v = torch.randn(shape, generator=g)
    return {"weight_v": v, "weight_g": torch.rand((shape[0], 1, 1), generator=g) + 0.5,
            "bias": 0.1 * torch.randn(out_c, generator=g)}


def _authors_state(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}

    def add(name, tensors):
        state.update({f"{name}.{k}": v for k, v in tensors.items()})

    c = config.initial_channels
    add("conv_pre", _weight_normed(c, N_MELS, 7, g))
    for i, k in enumerate(config.upsample_kernels):
        add(f"ups.{i}", _weight_normed(c // 2, c, k, g, transposed=True))
        c //= 2
        for j, (kr, dil) in enumerate(zip(config.resblock_kernels, config.resblock_dilations)):
            for n in range(len(dil)):
                add(f"resblocks.{i * len(config.resblock_kernels) + j}.convs1.{n}", _weight_normed(c, c, kr, g))
                add(f"resblocks.{i * len(config.resblock_kernels) + j}.convs2.{n}", _weight_normed(c, c, kr, g))
    add("conv_post", _weight_normed(1, c, 7, g))
    return state


def _w(state, name):
    v, gain = state[f"{name}.weight_v"], state[f"{name}.weight_g"]
    return gain * v / v.flatten(1).norm(dim=1).reshape(-1, 1, 1)


def _reference_forward(state, config, mel):
    """The paper's generator over the authors' names, with functional ops only."""
    x = F.conv1d(mel, _w(state, "conv_pre"), state["conv_pre.bias"], padding=3)
    for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernels)):
        x = F.conv_transpose1d(F.leaky_relu(x, 0.1), _w(state, f"ups.{i}"), state[f"ups.{i}.bias"], stride=u,
                               padding=(k - u) // 2)
        outs = []
        for j, (kr, dil) in enumerate(zip(config.resblock_kernels, config.resblock_dilations)):
            y = x
            base = f"resblocks.{i * len(config.resblock_kernels) + j}"
            for n, d in enumerate(dil):
                t = F.conv1d(F.leaky_relu(y, 0.1), _w(state, f"{base}.convs1.{n}"), state[f"{base}.convs1.{n}.bias"],
                             dilation=d, padding=(kr * d - d) // 2)
                t = F.conv1d(F.leaky_relu(t, 0.1), _w(state, f"{base}.convs2.{n}"), state[f"{base}.convs2.{n}.bias"],
                             padding=(kr - 1) // 2)
                y = y + t
            outs.append(y)
        x = sum(outs) / len(outs)
    return torch.tanh(F.conv1d(F.leaky_relu(x, 0.01), _w(state, "conv_post"), state["conv_post.bias"], padding=3))[:, 0]


def test_an_authors_file_loads_and_vocodes_as_the_reference(tmp_path):
    state = _authors_state(CONFIG)
    path = tmp_path / "g_00000010"
    torch.save({"generator": state}, path)
    mel = torch.randn(2, N_MELS, 9, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = read_reference_generator(path, N_MELS, CONFIG)(mel)
        want = _reference_forward(state, CONFIG, mel)
    assert ours.shape == (2, 9 * 8)
    torch.testing.assert_close(ours, want, rtol=1e-4, atol=1e-5)


def test_a_file_saved_without_weight_norm_loads_too(tmp_path):
    state = _authors_state(CONFIG, seed=1)
    plain = {}
    for key, value in state.items():
        if key.endswith("weight_v"):
            plain[key[:-len("_v")]] = _w(state, key[:-len(".weight_v")])
        elif key.endswith("bias"):
            plain[key] = value
    torch.save({"generator": plain}, tmp_path / "g")
    mel = torch.randn(1, N_MELS, 4)
    with torch.no_grad():
        torch.testing.assert_close(read_reference_generator(tmp_path / "g", N_MELS, CONFIG)(mel),
                                   _reference_forward(state, CONFIG, mel), rtol=1e-4, atol=1e-5)


def test_files_that_do_not_fit_are_refused_by_name(tmp_path):
    torch.save({"model": {}}, tmp_path / "other")
    with pytest.raises(WavediffError, match="holds no 'generator' state dict"):
        read_reference_generator(tmp_path / "other", N_MELS, CONFIG)
    torch.save({"generator": _authors_state(CONFIG)}, tmp_path / "g")
    bigger = HiFiGANConfig(upsample_rates=(4, 2), upsample_kernels=(8, 4), initial_channels=32, resblock=1,
                           resblock_kernels=(3, 5), resblock_dilations=((1, 3), (1, 2)))
    with pytest.raises(WavediffError, match="does not fit the hifigan settings"):
        read_reference_generator(tmp_path / "g", N_MELS, bigger)
    (tmp_path / "text").write_text("not a torch file")
    with pytest.raises(WavediffError, match="cannot read"):
        read_reference_generator(tmp_path / "text", N_MELS, CONFIG)


SMALL = ["mel.n_mels=10", "mel.hop_length=8", "mel.n_fft=64", "mel.win_length=64",
         "hifigan.upsample_rates=[4,2]", "hifigan.upsample_kernels=[8,4]", "hifigan.initial_channels=16",
         "hifigan.resblock=1", "hifigan.resblock_kernels=[3,5]", "hifigan.resblock_dilations=[[1,3],[1,2]]"]


@pytest.mark.parametrize("saved", ["weight-normed", "plain"])
def test_import_makes_a_checkpoint_that_vocodes_as_the_reference_and_starts_training(tmp_path, audio_dir, saved):
    state = _authors_state(CONFIG, seed=2)
    if saved == "plain":                                # saved after remove_weight_norm
        state_saved = {k[:-len("_v")] if k.endswith("weight_v") else k:
                       _w(state, k[:-len(".weight_v")]) if k.endswith("weight_v") else v
                       for k, v in state.items() if not k.endswith("weight_g")}
    else:
        state_saved = state
    torch.save({"generator": state_saved}, tmp_path / "g_02500000")
    args = ["import-hifigan", "--generator", str(tmp_path / "g_02500000"), "--config", "hifigan-v3",
            *[a for s in SMALL for a in ("--set", s)], "--out", str(tmp_path / "imported")]
    assert main(args) == 0
    vocoder = Vocoder.from_checkpoint(tmp_path / "imported", device="cpu", precision="fp32", chunk_seconds=None)
    mel = torch.randn(N_MELS, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = _reference_forward(state, CONFIG, mel.unsqueeze(0))[0]
    torch.testing.assert_close(vocoder.vocode(mel), want, rtol=1e-4, atol=1e-5)
    # the imported generator starts a training run; the discriminators start fresh
    config = load_config("hifigan-v3", [*SMALL, "train.precision=fp32", "data.val_count=2", "train.batch_size=2",
                                        "data.crop_frames=8"])
    trainer = Trainer(config, audio_dir, tmp_path / "finetune", init_from=tmp_path / "imported", progress=False)
    for k, v in trainer.model.generator.state_dict().items():
        torch.testing.assert_close(v, vocoder.model.generator.state_dict()[k], rtol=1e-6, atol=1e-7)
    assert main([*args[:-1], str(tmp_path / "x"), "--config", "tiny"]) == 2     # not a HiFi-GAN config
