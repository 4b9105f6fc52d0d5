"""wavediff.evaluation.report: the Markdown and JSON reports of an evaluation."""
from __future__ import annotations

import json

import pytest

from wavediff.evaluation.runner import METRIC_KEYS


pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("parselmouth")


def test_markdown_and_json_reports(report_dir):
    out, report = report_dir
    text = (out / "results.md").read_text()
    assert text.count("| run_a") == 4 and "PESQ-WB ↑" in text and "no DTW" in text
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["utterances"] == 2 and data["meta"]["checkpoints"][0]["step"] == 7
    assert {m["key"] for m in data["metrics"]} == set(METRIC_KEYS)
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 * 6 and page.count('class="spec"') == 2 * 6
