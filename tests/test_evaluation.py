"""wavediff evaluate: systems, scores re-derived from the written audio, reports, plots, the page in Chromium."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import PAPER_RECIPE, SR, tone_sweep
from wavediff.config import load_config
from wavediff.errors import WavediffError
from wavediff.evaluation.plots import read_training_curves
from wavediff.evaluation.report import write_report
from wavediff.evaluation.runner import METRIC_KEYS, evaluate
from wavediff.models.diffwave import build_model
from wavediff.checkpoint import save_checkpoint

pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("parselmouth")

MICRO = ["model.residual_layers=3", "model.residual_channels=8", *PAPER_RECIPE]


def make_run(root: Path, seed: int, overrides: list[str] = ()) -> Path:
    """A run folder with an untrained checkpoint at step 7 and a hand-written metrics.jsonl."""
    config = load_config("tiny", [*MICRO, *overrides])
    torch.manual_seed(seed)
    model = build_model(config)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    save_checkpoint(root / "checkpoints", 7, config, model.state_dict(), None, keep_last=1)
    rows = [{"step": s, "loss": 1.0 / s, "grad_norm": 0.1} for s in range(1, 8)]
    rows.insert(4, {"step": 4, "val_loss": 0.3, "val_loss_ema": 0.25})
    (root / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"step\": 8, \"lo")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "test"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"utt{i}.wav", tone_sweep(0.6 + 0.2 * i, seed=10 + i), SR)
    run_a = make_run(root / "run_a", 0)
    run_b = make_run(root / "run_b" / "nested" / "run_a", 1)  # same folder name: must get a distinct label
    return root, data, run_a, run_b


@pytest.fixture(scope="module")
def report_dir(setup):
    root, data, run_a, run_b = setup
    out = root / "report"
    report = evaluate([str(run_a), str(run_b)], data, out, steps=[6, 3], gl_iters=[4], seed=0, device="cpu")
    write_report(report, out)
    return out, report


def test_systems_and_files(report_dir):
    out, report = report_dir
    names = [s.spec.name for s in report.systems]
    assert names == ["Griffin-Lim, 4 it", "run_a, 6 steps", "run_a, 3 steps", "run_a-2, 6 steps", "run_a-2, 3 steps"]
    assert len({s.spec.slug for s in report.systems}) == 5
    for utt in report.utterances:
        for slug in ["recording", *[s.spec.slug for s in report.systems]]:
            assert (out / utt.audio[slug]).is_file() and (out / utt.spectrogram[slug]).is_file()
    for f in ("results.json", "results.md", "index.html", "metrics_vs_steps.png", "training_curves.png"):
        assert (out / f).is_file(), f


def test_scores_match_metrics_recomputed_from_the_written_audio(report_dir):
    """Recompute PESQ, STOI and MR-STFT from the saved wavs with the packages directly."""
    import pesq
    import pystoi
    import soxr

    from wavediff.metrics.spectral import multi_resolution_stft_distance

    out, report = report_dir
    data = json.loads((out / "results.json").read_text())
    for utt in data["utterances"]:
        ref, sr = sf.read(out / utt["audio"]["recording"])
        for slug, scores in utt["scores"].items():
            est, _ = sf.read(out / utt["audio"][slug])
            assert est.shape == ref.shape
            assert scores["stoi"] == pytest.approx(pystoi.stoi(ref, est, sr), abs=2e-3)
            r16, e16 = soxr.resample(ref, sr, 16000), soxr.resample(est, sr, 16000)
            assert scores["pesq_wb"] == pytest.approx(pesq.pesq(16000, r16, e16, "wb"), abs=0.05)
            assert scores["mr_stft"] == pytest.approx(multi_resolution_stft_distance(ref, est), rel=1e-3)


def test_summaries_are_the_mean_of_the_utterances(report_dir):
    _, report = report_dir
    for system in report.systems:
        for key in METRIC_KEYS:
            values = [u.scores[system.spec.slug][key] for u in report.utterances]
            finite = [v for v in values if np.isfinite(v)]
            summary = system.metrics[key]
            assert summary.n == len(finite)
            if finite:
                assert summary.mean == pytest.approx(np.mean(finite))
        assert system.rtf > 0


def test_griffin_lim_beats_an_untrained_diffwave(report_dir):
    _, report = report_dir
    gl = report.systems[0].metrics
    for system in report.systems[1:]:
        assert gl["log_mel_l1"].mean < system.metrics["log_mel_l1"].mean
        assert gl["mr_stft"].mean < system.metrics["mr_stft"].mean


def test_markdown_and_json_reports(report_dir):
    out, report = report_dir
    text = (out / "results.md").read_text()
    assert text.count("| run_a") == 4 and "PESQ-WB ↑" in text and "no DTW" in text
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["utterances"] == 2 and data["meta"]["checkpoints"][0]["step"] == 7
    assert {m["key"] for m in data["metrics"]} == set(METRIC_KEYS)
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 * 6 and page.count('class="spec"') == 2 * 6


def test_training_curves_are_read_from_the_run_folder(setup):
    _, _, run_a, _ = setup
    curves = read_training_curves(run_a)
    np.testing.assert_allclose(curves["loss"][:, 1], [1.0 / s for s in range(1, 8)])
    np.testing.assert_allclose(curves["val_loss_ema"], [[4, 0.25]])  # the cut-off last line is skipped
    np.testing.assert_allclose(read_training_curves(run_a / "checkpoints" / "step_00000007")["val_loss"], [[4, 0.3]])


def test_checkpoints_with_different_sample_rates_are_refused(setup, tmp_path):
    root, data, run_a, _ = setup
    other = make_run(tmp_path / "run16k", 0, ["mel.sample_rate=16000"])
    with pytest.raises(WavediffError, match="different sample rates"):
        evaluate([str(run_a), str(other)], data, tmp_path / "r", steps=[6], gl_iters=[], device="cpu")
    with pytest.raises(WavediffError, match="no audio|not found"):
        evaluate([str(run_a)], tmp_path / "missing", tmp_path / "r", steps=[6], device="cpu")


def _chromium_or_skip() -> None:
    pytest.importorskip("playwright", reason="the page test needs the playwright package (pip install .[eval])")
    from wavediff.evaluation.browser import find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium on PATH (scripts/test.sh installs Debian's chromium where apt-get can run)")


def test_listening_page_loads_every_player_and_image_in_chromium(report_dir):
    _chromium_or_skip()
    from wavediff.evaluation.browser import check_page

    out, report = report_dir
    check = check_page(out / "index.html", out / "screenshot.png")
    expected = len(report.utterances) * (len(report.systems) + 1)
    assert len(check.players) == expected
    assert len(check.images) == expected + 2  # the spectrograms and the two plots
    assert check.broken_players == [] and check.broken_images == []
    assert all(p["duration"] == pytest.approx(next(u.duration_s for u in report.utterances if u.id in p["src"]),
                                              abs=0.01) for p in check.players)
    assert check.ok and (out / "screenshot.png").stat().st_size > 10_000


def test_page_check_notices_a_missing_file(report_dir, tmp_path):
    _chromium_or_skip()
    from wavediff.evaluation.browser import check_page

    out, _ = report_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim_audio = next((copy / "audio" / "recording").glob("*.wav"))
    victim_audio.unlink()
    next((copy / "spectrograms" / "recording").glob("*.png")).write_bytes(b"not a png")
    check = check_page(copy / "index.html")
    assert len(check.broken_players) == 1 and victim_audio.name in check.broken_players[0]
    assert len(check.broken_images) == 1 and not check.ok


def test_cli_evaluate_and_curves(setup, tmp_path):
    root, data, run_a, _ = setup
    out = tmp_path / "cli_report"
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(run_a), "--label", "mine",
                           "--data", str(data), "--steps", "6", "--gl-iters", "--limit", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "| mine, 6 steps |" in proc.stdout and "Griffin-Lim" not in proc.stdout
    assert json.loads((out / "results.json").read_text())["meta"]["utterances"] == 1
    proc = subprocess.run([sys.executable, "-m", "wavediff", "curves", "--run", str(run_a), "--out",
                           str(tmp_path / "c.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (tmp_path / "c.png").stat().st_size > 5000, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(tmp_path / "nope"),
                           "--data", str(data), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("wavediff: error: checkpoint")


def test_cli_evaluate_compares_sampler_variants_of_one_checkpoint(setup, tmp_path):
    root, data, run_a, _ = setup
    out = tmp_path / "variants"
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(run_a), "--label", "m",
                           "--data", str(data), "--steps", "6", "--gl-iters", "--limit", "1", "--out", str(out),
                           "--sampler", "own", "--sampler", "gla:consistency=griffin-lim,consistency_steps=2",
                           "--sampler", "gl-start:start=griffin-lim,start_steps=1,griffin_lim_iters=4"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    for row in ("| m, 6 steps, own |", "| m, 6 steps, gla |", "| m, 6 steps, gl-start |"):
        assert row in proc.stdout
    systems = {s["name"]: s for s in json.loads((out / "results.json").read_text())["systems"]}
    assert systems["m, 6 steps, gla"]["sampler"]["consistency"] == "griffin-lim"
    assert systems["m, 6 steps, own"]["sampler"]["consistency"] == "none"
    report = (out / "results.md").read_text()   # each row's effective settings, spelled out: the variant
    # names two keys, the checkpoint (tiny) brings its 16 iterations per step
    assert ("- sampler of `m, 6 steps, gla`: from noise; Griffin-Lim consistency at the 2 noisiest steps, "
            "16 iterations each") in report
    assert ("- sampler of `m, 6 steps, gl-start`: the last 1 steps from a noised Griffin-Lim estimate "
            "(4 iterations); no consistency step") in report
    # the Griffin-Lim start lands next to Griffin-Lim: far closer to the recording's mel than an untrained net
    own, start = (systems[f"m, 6 steps, {k}"]["metrics"]["log_mel_l1"]["mean"] for k in ("own", "gl-start"))
    assert start < 0.5 * own
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(run_a), "--data",
                           str(data), "--out", str(out), "--sampler", "x:start=gl"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "sampler.start='gl'" in proc.stderr.strip().splitlines()[-1]
