"""wavediff.evaluation.runner (`wavediff evaluate`): systems and files, scores re-derived from the
written audio, summaries, Griffin-Lim against an untrained DiffWave, sample-rate checks, sampler
variants of one checkpoint, band-limited scoring, reports read back and merged."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from wavediff.errors import WavediffError
from wavediff.evaluation.report import markdown_report, write_report
from wavediff.evaluation.runner import (METRIC_KEYS, EvaluationReport, evaluate, merge_reports,
                                         read_report)

from helpers import untrained_run


pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("parselmouth")


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
    chains = {s.spec.name: s.spec.chain for s in report.systems}   # the untrained runs have T = 50, Appendix B
    assert chains["run_a, 6 steps"] == ("6 steps, diffusion.fast_schedule (aligned, Appendix B), "
                                        "eta 0.0001, 0.001, 0.01, 0.05, 0.2, 0.5")
    assert chains["run_a, 3 steps"].startswith("3 steps, strided over the T = 50 training steps, eta ")
    assert ("- sampler of `run_a, 6 steps`: from noise; no consistency step; chain: 6 steps, diffusion.fast_schedule"
            in (out / "results.md").read_text())


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


def test_a_written_report_reads_back_and_merges_with_a_later_one(report_dir, evaluation_runs, tmp_path):
    """results.json reads back as the report that wrote it; an evaluation of the same utterances at
    other steps merges into one report (Griffin-Lim once) and one steps plot; other utterances are refused."""
    out, report = report_dir
    back = read_report(out)
    assert back.meta == json.loads((out / "results.json").read_text())["meta"]
    assert [s.spec for s in back.systems] == [s.spec for s in report.systems]
    for a, b in zip(back.systems, report.systems):
        for key in METRIC_KEYS:
            assert a.metrics[key].n == b.metrics[key].n
            assert a.metrics[key].mean == pytest.approx(b.metrics[key].mean, nan_ok=True)
            assert a.metrics[key].ci95 == pytest.approx(b.metrics[key].ci95, nan_ok=True)
    _, data, run_a, _ = evaluation_runs
    later = evaluate([str(run_a)], data, tmp_path / "later", steps=[2], gl_iters=[4], seed=0, device="cpu")
    write_report(later, tmp_path / "later")
    merged = merge_reports([back, read_report(tmp_path / "later" / "results.json")])
    names = [s.spec.name for s in merged.systems]
    assert names == [s.spec.name for s in report.systems] + ["run_a, 2 steps"]
    two = next(s for s in later.systems if s.spec.name == "run_a, 2 steps")
    for u, v in zip(merged.utterances, later.utterances):
        assert u.scores[two.spec.slug] == pytest.approx(v.scores[two.spec.slug], nan_ok=True)
    proc = subprocess.run([sys.executable, "-m", "wavediff", "curves", "--report", str(out), str(tmp_path / "later"),
                           "--out", str(tmp_path / "steps.png")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and (tmp_path / "steps.png").stat().st_size > 5000, proc.stderr
    fewer = EvaluationReport(back.meta, back.systems, back.utterances[:1])
    with pytest.raises(WavediffError, match="different utterances"):
        merge_reports([back, fewer])
    with pytest.raises(WavediffError, match="no evaluation report"):
        read_report(tmp_path / "nothing")


def test_griffin_lim_beats_an_untrained_diffwave(report_dir):
    _, report = report_dir
    gl = report.systems[0].metrics
    for system in report.systems[1:]:
        assert gl["log_mel_l1"].mean < system.metrics["log_mel_l1"].mean
        assert gl["mr_stft"].mean < system.metrics["mr_stft"].mean


def test_checkpoints_with_different_sample_rates_are_refused(evaluation_runs, tmp_path):
    root, data, run_a, _ = evaluation_runs
    other = untrained_run(tmp_path / "run16k", 0, ["mel.sample_rate=16000"])
    with pytest.raises(WavediffError, match="different sample rates"):
        evaluate([str(run_a), str(other)], data, tmp_path / "r", steps=[6], gl_iters=[], device="cpu")
    with pytest.raises(WavediffError, match="no audio|not found"):
        evaluate([str(run_a)], tmp_path / "missing", tmp_path / "r", steps=[6], device="cpu")


def test_cli_evaluate_and_curves(evaluation_runs, tmp_path):
    root, data, run_a, _ = evaluation_runs
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


def test_cli_evaluate_compares_sampler_variants_of_one_checkpoint(evaluation_runs, tmp_path):
    root, data, run_a, _ = evaluation_runs
    out = tmp_path / "variants"
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(run_a), "--label", "m",
                           "--data", str(data), "--steps", "6", "--gl-iters", "--limit", "1", "--out", str(out),
                           "--sampler", "own", "--sampler", "gla:consistency=griffin-lim,consistency_steps=2",
                           "--sampler", "gl-start:start=griffin-lim,start_steps=1,griffin_lim_iters=4",
                           "--sampler", "dpm-solver:consistency=none"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    for row in ("| m, 6 steps, own |", "| m, 6 steps, gla |", "| m, 6 steps, gl-start |", "| m, 6 steps, dpm-solver |"):
        assert row in proc.stdout
    systems = {s["name"]: s for s in json.loads((out / "results.json").read_text())["systems"]}
    assert systems["m, 6 steps, gla"]["sampler"]["consistency"] == "griffin-lim"
    assert systems["m, 6 steps, own"]["sampler"]["consistency"] == "none"
    assert systems["m, 6 steps, dpm-solver"]["sampler"]["method"] == "dpm-solver"
    assert systems["m, 6 steps, own"]["sampler"]["method"] == "ancestral"
    report = (out / "results.md").read_text()   # each row's effective settings, spelled out: the variant
    # names two keys, the checkpoint (tiny) brings its 16 iterations per step
    assert ("- sampler of `m, 6 steps, gla`: from noise; Griffin-Lim consistency at the 2 noisiest steps, "
            "16 iterations each") in report
    assert ("- sampler of `m, 6 steps, gl-start`: the last 1 steps from a noised Griffin-Lim estimate "
            "(4 iterations); no consistency step") in report
    assert "- sampler of `m, 6 steps, dpm-solver`: from noise; no consistency step; DPM-Solver++(2M) steps" in report
    # the Griffin-Lim start lands next to Griffin-Lim: far closer to the recording's mel than an untrained net
    own, start = (systems[f"m, 6 steps, {k}"]["metrics"]["log_mel_l1"]["mean"] for k in ("own", "gl-start"))
    assert start < 0.5 * own
    proc = subprocess.run([sys.executable, "-m", "wavediff", "evaluate", "--checkpoint", str(run_a), "--data",
                           str(data), "--out", str(out), "--sampler", "x:start=gl"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "sampler.start='gl'" in proc.stderr.strip().splitlines()[-1]


def test_a_gan_is_one_system_beside_every_step_count_of_a_diffusion_model(evaluation_runs, tmp_path):
    """A one-pass vocoder (HiFi-GAN) is evaluated once whatever the steps, beside DiffWave's step
    counts and one Griffin-Lim per mel front-end, and drawn as a line in the steps plot."""
    from wavediff.checkpoint import save_checkpoint
    from wavediff.config import load_config
    from wavediff.evaluation.plots import plot_metrics_vs_steps
    from wavediff.models.family import family_of

    root, data, run_a, _ = evaluation_runs
    config = load_config("hifigan-v3", ["hifigan.initial_channels=32", "hifigan.discriminator_width=0.125",
                                        "hifigan.periods=[2]", "hifigan.scales=1"])
    model = family_of(config).build_model(config)
    gan = tmp_path / "gan"
    save_checkpoint(gan / "checkpoints", 3, config, model.state_dict(), None, keep_last=1)
    report = evaluate([str(gan), str(run_a)], data, tmp_path / "report", steps=[6, 3], gl_iters=[4], seed=0,
                      device="cpu", limit=1)
    names = [s.spec.name for s in report.systems]
    assert names == ["Griffin-Lim, 4 it (hifigan mel)", "Griffin-Lim, 4 it (diffwave mel)", "gan",
                     "run_a, 6 steps", "run_a, 3 steps"]
    assert report.systems[2].spec.steps is None
    assert len(list((tmp_path / "report" / "audio" / "gan").glob("*.wav"))) == 1
    assert plot_metrics_vs_steps(report, tmp_path / "steps.png").stat().st_size > 10_000


def test_score_max_hz_scores_both_sides_low_passed_and_keeps_the_audio_full_band(evaluation_runs, tmp_path):
    """With a cutoff every score is the metric of the written (full-band) audio after an
    independent FFT low-pass of both sides; the recording on the page keeps its high band."""
    from wavediff.metrics.spectral import multi_resolution_stft_distance

    root, data, run_a, _ = evaluation_runs
    out = tmp_path / "band"
    report = evaluate([str(run_a)], data, out, steps=[3], gl_iters=[4], device="cpu", limit=1, score_max_hz=1000.0)
    assert report.meta["score_max_hz"] == 1000.0
    assert "scored below 1000 Hz" in markdown_report(report)
    utt = json.loads((out / "results.json").read_text())["utterances"][0]
    ref, sr = sf.read(out / utt["audio"]["recording"])
    spectrum = np.abs(np.fft.rfft(ref))
    freqs = np.fft.rfftfreq(ref.shape[0], 1 / sr)
    assert spectrum[freqs > 1000].sum() > 0.2 * spectrum.sum()      # the harmonics above 1 kHz are kept

    def band(x):
        s = np.fft.rfft(x)
        s[freqs > 1000] = 0
        return np.fft.irfft(s, n=x.shape[0])

    for slug, scores in utt["scores"].items():
        est, _ = sf.read(out / utt["audio"][slug])
        assert scores["mr_stft"] == pytest.approx(multi_resolution_stft_distance(band(ref), band(est)), rel=1e-3)
        assert scores["mr_stft"] != pytest.approx(multi_resolution_stft_distance(ref, est), rel=1e-2)
    with pytest.raises(WavediffError, match=r"12000.0 Hz must lie strictly between 0 and the Nyquist"):
        evaluate([str(run_a)], data, tmp_path / "r", steps=[3], gl_iters=[], device="cpu", score_max_hz=12000.0)
