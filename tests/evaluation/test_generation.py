"""wavediff.evaluation.generation: `wavediff evaluate-generation` on a tiny class model's clips: the
real test clips (the ceiling) score above noise (the floor)."""
from __future__ import annotations

import json

from wavediff.cli import main


def test_evaluate_generation_puts_ceiling_above_floor(classifier_dir, tone_data, tmp_path, capsys):
    from helpers import clip_config
    from wavediff.training.trainer import Trainer

    Trainer(clip_config("class"), tone_data[0], tmp_path / "run", progress=False).fit(max_steps=1)
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--n", "6", "--out", str(tmp_path / "gen")]) == 0
    out = tmp_path / "report"
    assert main(["evaluate-generation", "--classifier", str(classifier_dir), "--train", str(tone_data[0]),
                 "--test", str(tone_data[1]), "--noise", "--samples", str(tmp_path / "gen"),
                 "--checkpoint", str(tmp_path / "run"), "--name", "tiny", "--guidance", "1", "3",
                 "--n", "6", "--per-class", "2", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())["results"]
    names = [r["name"] for r in results]
    assert names == ["test split (ceiling)", "white noise (floor)", "tiny", "tiny, guidance 3", "gen"]
    ceiling, floor = results[0]["metrics"], results[1]["metrics"]
    assert ceiling["accuracy"] >= 0.9 and ceiling["fid"] < floor["fid"]
    assert ceiling["is"] > floor["is"] and ceiling["am"] < floor["am"]
    assert results[2]["metrics"]["n"] == 6 and "fid_class" in results[2]["metrics"]
    assert "| test split (ceiling) |" in table and "FID-class" in table
    assert len(list((out / "examples" / "tiny").glob("*.wav"))) == 6      # 2 per class kept
