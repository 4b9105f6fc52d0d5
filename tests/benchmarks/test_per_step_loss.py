"""benchmarks/per_step_loss.py: its no-structure baseline against the closed form, and a run on
a tiny class checkpoint."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from wavediff.training.trainer import Trainer

from helpers import REPO_ROOT, clip_config, write_digits


SCRIPT = REPO_ROOT / "benchmarks" / "per_step_loss.py"


def load_script():
    spec = importlib.util.spec_from_file_location("per_step_loss", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("alpha_bar, power", [(0.9, 0.002), (0.13, 0.002), (0.5, 0.25), (0.99, 1.0)])
def test_white_data_baseline_reaches_the_linear_mmse_error(alpha_bar, power):
    # x0 white Gaussian of variance P: E[(eps_hat - eps)^2] = aP / (aP + 1 - a) for the MMSE line.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(400_000, generator=g, dtype=torch.float64) * power ** 0.5
    eps = torch.randn(400_000, generator=g, dtype=torch.float64)
    xt = alpha_bar ** 0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps
    baseline = load_script().white_baseline(xt, alpha_bar, power)
    mse = float((baseline - eps).pow(2).mean())
    expected = alpha_bar * power / (alpha_bar * power + 1 - alpha_bar)
    assert mse == pytest.approx(expected, rel=0.02)
    # and no other scale of x_t does better (the line is the minimum)
    for k in (0.9, 1.1):
        worse = float((k * baseline - eps).pow(2).mean())
        assert worse > mse


def test_script_reports_every_step_for_a_class_checkpoint(tmp_path):
    digits = write_digits(tmp_path / "train", per_class=2)
    run = tmp_path / "run"
    Trainer(clip_config("class"), digits, run, progress=False).fit(max_steps=2)
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(run), "--data", str(digits),
                    "--clips", "6", "--steps", "0", "3", "--threads", "1", "--json", str(out)],
                   check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    rows, power = report["rows"], report["power"]
    assert [r["step"] for r in rows] == [0, 3]
    # the schedule's alpha-bar: prod(1 - beta), beta linear 1e-4 .. 0.2 over 20 steps
    betas = torch.linspace(1e-4, 0.2, 20, dtype=torch.float64)
    for r in rows:
        a = float(torch.prod(1 - betas[: r["step"] + 1]))
        assert r["alpha_bar"] == pytest.approx(a, rel=1e-5)
        # a linear estimate's error does not depend on the data being white, only on its power
        assert r["baseline_mse"] == pytest.approx(a * power / (a * power + 1 - a), rel=0.1)
        assert r["model_mse"] > 0
