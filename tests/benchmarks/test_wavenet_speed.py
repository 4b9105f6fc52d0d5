"""benchmarks/wavenet_speed.py: every path runs on a preset, and the native kernel outruns the
cached torch loop by far (it is the point of the kernel)."""
from __future__ import annotations

import importlib.util

import pytest

from wavediff.models.wavenet import native

from helpers import REPO_ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("wavenet_speed", REPO_ROOT / "benchmarks" / "wavenet_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(native.load() is None, reason="the native WaveNet kernel cannot be built here")
def test_the_speed_table_covers_every_path_and_native_is_far_faster():
    rows = load_script().measure("wavenet-sc09", 1, {"naive": 1, "torch": 40, "native": 4000, "reference": 40}, 1)
    speed = {(r["path"], r["batch"]): r["samples_per_s"] for r in rows}
    assert {"naive loop (torch, full receptive field)", "cached loop (torch)", "native kernel"} <= {p for p, _ in speed}
    assert speed[("native kernel", 1)] > 10 * speed[("cached loop (torch)", 1)]
    assert speed[("cached loop (torch)", 1)] > speed[("naive loop (torch, full receptive field)", 1)]
    assert all(abs(r["rtf_16000"] * 16000 - r["samples_per_s"]) < 1 for r in rows)
