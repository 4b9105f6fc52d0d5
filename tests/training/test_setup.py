"""wavediff.training.setup: precision and implementation resolved for the hardware and recorded in
the run; bf16 autocast on a CPU; fp16 only with CUDA."""
from __future__ import annotations

import logging

import pytest
import torch

from wavediff.errors import WavediffError
from wavediff.training.trainer import Trainer
from wavediff.training import setup as training_setup


def test_auto_precision_falls_back_to_fp32_without_bf16_hardware(monkeypatch, caplog):
    import wavediff.precision as precision_names

    monkeypatch.setattr(precision_names, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger="wavediff.training.setup"):
        assert training_setup.resolve_training_precision("auto", torch.device("cpu")) == "fp32"
    lines = [r for r in caplog.records if r.name == "wavediff.training.setup"]
    assert len(lines) == 1 and "fp32" in lines[0].getMessage()
    monkeypatch.setattr(precision_names, "cpu_has_native_bf16", lambda: True)
    assert training_setup.resolve_training_precision("auto", torch.device("cpu")) == "bf16"
    assert training_setup.resolve_training_precision("fp32", torch.device("cpu")) == "fp32"
    assert training_setup.resolve_training_implementation("auto", torch.device("cpu")) == "fused"
    assert training_setup.resolve_training_implementation("auto", torch.device("cuda")) == "reference"


def test_the_run_config_records_the_resolved_setup(tmp_path, audio_dir, micro_config):
    import json

    from wavediff.training.trainer import Trainer

    micro_config = micro_config.with_overrides(["train.precision=auto", "train.implementation=auto"])
    trainer = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False, device="cpu")
    assert trainer.config.train.precision in ("bf16", "fp32")
    assert trainer.config.train.implementation == "fused" and trainer.model.implementation == "fused"
    trainer.fit(1)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["precision"] == trainer.config.train.precision
    assert saved["train"]["implementation"] == "fused"


def test_bf16_autocast_trains_on_cpu(tmp_path, audio_dir, micro_config):
    cfg = micro_config.with_overrides(["train.precision=bf16"])
    result = Trainer(cfg, audio_dir, tmp_path / "run", progress=False, device="cpu").fit(3)
    assert len(result.losses) == 3 and all(0 < l < 2 for _, l in result.losses)


def test_fp16_needs_cuda(tmp_path, audio_dir, micro_config):
    cfg = micro_config.with_overrides(["train.precision=fp16"])
    with pytest.raises(WavediffError, match="fp16"):
        Trainer(cfg, audio_dir, tmp_path / "run", progress=False, device="cpu")
