"""Fixtures of the evaluation tests: two untrained runs, two test utterances and one evaluation
of them, made once for the whole folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from wavediff.evaluation.report import write_report
from wavediff.evaluation.runner import evaluate

from helpers import untrained_run, write_tone_files


@pytest.fixture(scope="package")
def evaluation_runs(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(root, test folder of two utterances, run_a, run_b): two untrained runs whose folders share a name."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_tone_files(root / "test", [0.6, 0.8], name="utt{i}", seed=10)
    run_a = untrained_run(root / "run_a", 0)
    run_b = untrained_run(root / "run_b" / "nested" / "run_a", 1)  # same folder name: must get a distinct label
    return root, data, run_a, run_b


@pytest.fixture(scope="package")
def report_dir(evaluation_runs):
    """(report folder, report) of both runs at 6 and 3 steps and Griffin-Lim with 4 iterations."""
    root, data, run_a, run_b = evaluation_runs
    out = root / "report"
    report = evaluate([str(run_a), str(run_b)], data, out, steps=[6, 3], gl_iters=[4], seed=0, device="cpu")
    write_report(report, out)
    return out, report
