"""wavediff.demo (`wavediff demo`): the main job runs end to end on a small budget."""
from __future__ import annotations

from helpers import run_wavediff


def test_demo_runs_small(tmp_path):
    proc = run_wavediff("demo", "--out", str(tmp_path / "demo"), "--minutes", "0.05", "--num-train", "6",
                        "--num-test", "1", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "| Griffin-Lim, 32 it |" in proc.stdout and "| DiffWave tiny, 6 steps |" in proc.stdout
    assert "| DiffWave tiny, 50 steps |" in proc.stdout and "PESQ-WB" in proc.stdout
    assert "| bundled speech22k-tiny, 6 steps |" in proc.stdout
    assert len(list((tmp_path / "demo" / "bundled").glob("*.wav"))) == 1    # heard before any training
    assert (tmp_path / "demo" / "spectrograms.png").stat().st_size > 10_000
    assert len(list((tmp_path / "demo" / "report" / "audio").glob("*/*.wav"))) == 6
    assert (tmp_path / "demo" / "report" / "index.html").is_file()
