"""wavediff.evaluation.schedule_search and ``wavediff search-schedule``: the log-SNR parametrisation
in closed form; the coarse grid and the refinement's moves stay ordered and inside the trained range;
a candidate's score is the evaluation's (evaluate() on the same utterances, seeds and chain); the
search returns the best chain it scored; the CLI writes a schedule that --schedule and a checkpoint
copy (--into) both run."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.config import load_config
from wavediff.evaluation.runner import evaluate
from wavediff.evaluation.schedule_search import (ScheduleScorer, coarse_grid, etas_from_levels, levels_from_etas,
                                                 neighbours, search_schedule)
from wavediff.pipelines import Vocoder

from helpers import BASE_ETAS


def test_levels_and_etas_are_inverse_closed_forms():
    etas = BASE_ETAS
    lam = levels_from_etas(etas)
    gbar = np.cumprod([1 - e for e in etas])
    assert lam == pytest.approx([math.log(g / (1 - g)) for g in gbar])
    assert etas_from_levels(lam) == pytest.approx(tuple(etas))


@pytest.mark.parametrize("steps", [1, 2, 3, 6])
def test_the_coarse_grid_and_the_moves_stay_ordered_in_the_trained_range(steps):
    abar_T = 0.28
    lam_min = math.log(abar_T / (1 - abar_T))
    grid = coarse_grid(steps, abar_T)
    assert len(grid) >= 4 and tuple(BASE_ETAS) not in grid
    for etas in grid:
        lam = levels_from_etas(etas)
        assert len(etas) == steps and all(0 < e < 1 for e in etas)
        assert lam[-1] >= lam_min - 1e-9 and all(a > b for a, b in zip(lam, lam[1:]))
    for etas in neighbours(grid[len(grid) // 2], 0.5, lam_min):
        lam = levels_from_etas(etas)
        assert lam[-1] >= lam_min - 1e-9 and all(a > b for a, b in zip(lam, lam[1:]))


def test_a_candidates_score_is_the_evaluations(evaluation_runs, tmp_path):
    root, data, run_a, _ = evaluation_runs
    report = evaluate([str(run_a)], data, tmp_path / "eval", steps=[6], gl_iters=[], seed=3, device="cpu")
    scorer = ScheduleScorer(str(run_a), sorted(str(p) for p in data.glob("*.wav")), 3, "fp32", [], 1)
    cand = scorer.score(BASE_ETAS)
    metrics = report.systems[0].metrics
    assert cand.log_mel_l1 == pytest.approx(metrics["log_mel_l1"].mean, rel=1e-4)
    assert cand.mr_stft == pytest.approx(metrics["mr_stft"].mean, rel=1e-4)
    assert math.isinf(scorer.score([0.9, 0.9]).score)          # below the trained noise range: cannot run


def test_the_search_returns_the_best_chain_it_scored(evaluation_runs):
    root, data, run_a, _ = evaluation_runs
    seen = []

    def progress(items, stage, count):
        for item in items:
            seen.append((stage, item))
            yield item

    result = search_schedule(str(run_a), data, 2, utterances=1, workers=1, rounds=2, progress=progress)
    searched = [c for stage, c in seen if stage != "baseline"]
    assert any(math.isfinite(c.score) for c in searched)
    assert result.best.score == min(c.score for c in searched) and result.best in searched
    assert result.baseline_name == "strided" and len(result.best.etas) == 2
    assert [s["name"] for s in result.stages] == ["coarse grid", "refine 1", "refine 2"]
    assert {st for st, _ in seen} >= {"baseline", "coarse grid"}


def test_cli_search_writes_a_schedule_that_vocode_and_a_checkpoint_copy_run(evaluation_runs, tmp_path):
    root, data, run_a, _ = evaluation_runs
    out = tmp_path / "s3.json"
    proc = subprocess.run([sys.executable, "-m", "wavediff", "search-schedule", "--checkpoint", str(run_a), "--data",
                           str(data), "--steps", "3", "--out", str(out), "--utterances", "1", "--workers", "2",
                           "--rounds", "1", "--into", str(tmp_path / "copy"), "--sampler", "ddim"],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert len(record["etas"]) == 3 and record["best"]["etas"] == record["etas"]
    assert record["best"]["score"] <= min(stage["score"] for stage in record["stages"])
    assert record["sampler"] == ["ddim"] and record["stages"][0]["name"] == "coarse grid"
    assert record["baseline"]["name"] == "strided" and record["wall_seconds"] > 0
    copy = Vocoder.from_checkpoint(tmp_path / "copy", device="cpu")
    assert copy.config.diffusion.schedules == (tuple(record["etas"]),)
    wavs = {}
    for name, args in {"file": ["--checkpoint", str(run_a), "--schedule", str(out)],
                       "copy": ["--checkpoint", str(tmp_path / "copy"), "--steps", "3"],
                       "strided": ["--checkpoint", str(run_a), "--steps", "3"]}.items():
        proc = subprocess.run([sys.executable, "-m", "wavediff", "vocode", *args, "--input", str(data / "utt0.wav"),
                               "--out", str(tmp_path / name)], capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        wavs[name] = sf.read(tmp_path / name / "utt0.wav")[0]
    assert np.array_equal(wavs["file"], wavs["copy"])
    assert not np.array_equal(wavs["file"], wavs["strided"])


def test_a_config_schedule_of_that_length_runs_before_the_strided_chain():
    cfg = load_config("tiny", ["diffusion.schedules=[[0.001,0.1,0.3]]"])
    from wavediff.models.diffwave.vocoding import reverse_chain
    torch.testing.assert_close(reverse_chain(cfg, 3).etas, torch.tensor([0.001, 0.1, 0.3], dtype=torch.float64))
    assert reverse_chain(cfg, 6).etas.tolist() == pytest.approx(list(cfg.diffusion.fast_schedule))
    with pytest.raises(Exception, match="one non-empty schedule per step count"):
        load_config("tiny", ["diffusion.schedules=[[0.1],[0.2]]"])
