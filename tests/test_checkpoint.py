"""wavediff.checkpoint: a checkpoint written and read back vocodes bit-identical audio."""
from __future__ import annotations

import numpy as np
import torch

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
