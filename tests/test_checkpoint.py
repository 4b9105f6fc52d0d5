"""wavediff.checkpoint: a checkpoint written and read back vocodes bit-identical audio; a part of
the weights (a GAN's generator) is read alone and checked against its own recorded hash."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wavediff.checkpoint import PARTS_SHA_KEY, WEIGHTS_FILE, load_weights, save_checkpoint, tensors_sha256
from wavediff.config import RunConfig
from wavediff.errors import WavediffError
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer


def test_checkpoint_round_trip_gives_bit_identical_audio(tmp_path, audio_dir, micro_config):
    trainer = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False)
    trainer.fit(6)
    mel = torch.from_numpy(np.array(trainer.train_set.mel(0)[:, :10]))
    one = Vocoder.from_checkpoint(tmp_path / "run", device="cpu")
    two = Vocoder.from_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000006", device="cpu")
    a = one.vocode(mel, 6, generator=torch.Generator().manual_seed(5))
    b = two.vocode(mel, 6, generator=torch.Generator().manual_seed(5))
    assert a.shape == (10 * 256,) and torch.equal(a, b)
    # the saved weights are the trainer's EMA weights
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(one.model.state_dict()[k], v), k


def _two_part_weights():
    g = torch.Generator().manual_seed(0)
    return {"generator.a": torch.randn(3, 4, generator=g), "generator.b": torch.randn(5, generator=g),
            "critic.c": torch.randn(64, 64, generator=g)}


def test_a_part_is_read_alone_and_checked_against_its_own_hash(tmp_path):
    weights = _two_part_weights()
    ckpt = save_checkpoint(tmp_path / "ckpts", 1, RunConfig(), weights, None, keep_last=1)
    part = load_weights(ckpt, ("generator",))
    assert sorted(part) == ["generator.a", "generator.b"]
    assert all(torch.equal(part[k], weights[k]) for k in part)
    assert sorted(load_weights(ckpt)) == sorted(weights)
    # the stored per-part hash is the hash of that part's tensors alone
    with safe_open(str(ckpt / WEIGHTS_FILE), framework="pt") as fh:
        recorded = json.loads(fh.metadata()[PARTS_SHA_KEY])
    assert recorded["critic"] == tensors_sha256({"critic.c": weights["critic.c"]})
    # a flipped byte in the part that is read is found; one in the other part is not read
    raw = bytearray((ckpt / WEIGHTS_FILE).read_bytes())
    offset = raw.index(weights["generator.b"].numpy().tobytes())
    raw[offset] ^= 0xFF
    (ckpt / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(WavediffError, match="damaged"):
        load_weights(ckpt, ("generator",))
    with pytest.raises(WavediffError, match="damaged"):
        load_weights(ckpt)


def test_a_file_without_part_hashes_is_checked_whole_then_cut(tmp_path):
    weights = _two_part_weights()
    folder = tmp_path / "older"
    folder.mkdir()
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"weights_sha256": tensors_sha256(weights)})
    assert sorted(load_weights(folder, ("generator",))) == ["generator.a", "generator.b"]
    save_file({**weights, "critic.c": weights["critic.c"] + 1}, str(folder / WEIGHTS_FILE),
              metadata={"weights_sha256": tensors_sha256(weights)})
    with pytest.raises(WavediffError, match="damaged"):      # the damage is in the part not asked for
        load_weights(folder, ("generator",))
