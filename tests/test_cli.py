"""wavediff.cli: every subcommand in a subprocess; bad input ends in one line and no traceback."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from wavediff.cli import main

from helpers import CLIP, CLIP_SR, SR, run_wavediff, tone_sweep, write_tone_files


MICRO = ["--set", "model.residual_layers=3", "--set", "model.residual_channels=8", "--set", "data.crop_frames=8",
         "--set", "train.batch_size=2", "--set", "data.val_count=2"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_tone_files(root / "data", [0.5] * 6, name="c{i}")
    run = root / "run"
    proc = run_wavediff("train", "--config", "tiny", "--data", str(data), "--out", str(run), "--max-steps", "3",
                    "--no-progress", *MICRO)
    assert proc.returncode == 0, proc.stderr
    return root, data, run


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("wavediff: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([ln for ln in lines if ln.startswith("wavediff: error")]) == 1
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_train_writes_a_checkpoint_and_resumes(trained_run):
    root, data, run = trained_run
    assert (run / "checkpoints" / "step_00000003" / "model.safetensors").is_file()
    proc = run_wavediff("train", "--config", "tiny", "--data", str(data), "--out", str(run), "--max-steps", "4",
                    "--resume", "--no-progress", *MICRO)
    assert proc.returncode == 0, proc.stderr
    assert (run / "checkpoints" / "step_00000004").is_dir()


def test_vocode_audio_and_mel_inputs(trained_run):
    root, data, run = trained_run
    out = root / "voc"
    proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c0.wav"), str(data / "c1.wav"),
                    "--steps", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out / "c0.wav").frames == int(0.5 * SR)
    mels = root / "mels"
    proc = run_wavediff("mel", "--checkpoint", str(run), "--input", str(data / "c2.wav"), "--out", str(mels))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((mels / "c2.json").read_text())["wavediff_mel_frontend"]["name"] == "diffwave"
    proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", str(mels), "--steps", "50", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out / "c2.wav").frames == np.load(mels / "c2.npy").shape[-1] * 256


def test_vocode_precisions_and_chunks_give_the_same_audio(trained_run):
    """The plain chain (``tiny``'s consistency step switched off) through every engine mode."""
    root, data, run = trained_run
    inputs = [str(data / "c0.wav"), str(data / "c1.wav")]
    proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", *inputs, "--out", str(root / "refused"),
                    "--chunk-seconds", "stream")
    assert proc.returncode != 0 and "sampler.consistency" in proc.stderr and "not streaming" in proc.stderr
    outs = {}
    for name, flags in {"fp32": ["--precision", "fp32", "--chunk-seconds", "none"],
                        "chunked": ["--precision", "fp32", "--chunk-seconds", "0.1"],
                        "stream": ["--precision", "fp32", "--chunk-seconds", "stream"],
                        "bf16": ["--precision", "bf16"]}.items():
        proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", *inputs, "--out", str(root / name), *flags,
                        "--sampler", "consistency=none")
        assert proc.returncode == 0, proc.stderr
        assert f"in {name if name == 'bf16' else 'fp32'}" in proc.stderr
        outs[name] = sf.read(root / name / "c1.wav")[0]
    assert np.abs(outs["fp32"] - outs["chunked"]).max() < 1e-4
    assert np.abs(outs["fp32"] - outs["stream"]).max() < 1e-4
    assert 0 < np.abs(outs["fp32"] - outs["bf16"]).max() < 0.1


def test_config_shows_the_parameter_count():
    proc = run_wavediff("config", "base")
    assert proc.returncode == 0, proc.stderr
    assert "2,619,971" in proc.stdout and "6139" in proc.stdout


def test_bad_inputs_end_in_one_line(trained_run, tmp_path):
    root, data, run = trained_run
    assert_one_line_error(run_wavediff("train", "--config", "nope", "--data", str(data), "--out", str(tmp_path / "r")),
                          "unknown preset", "'nope'")
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "missing.wav"),
                                   "--out", str(tmp_path)), "not found", "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF....garbage" * 20)
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "junk.wav"),
                                   "--out", str(tmp_path)), "cannot read audio file")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "empty.wav"),
                                   "--out", str(tmp_path)), "empty")
    sf.write(tmp_path / "sr16k.wav", tone_sweep(0.2, sr=16000), 16000)
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "sr16k.wav"),
                                   "--out", str(tmp_path)), "16000 Hz", "22050 Hz")
    np.save(tmp_path / "wrong.npy", np.random.rand(64, 10).astype(np.float32))
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "wrong.npy"),
                                   "--out", str(tmp_path)), "(64, 10)", "80")
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c0.wav"),
                                   "--out", str(tmp_path), "--chunk-seconds", "0"), "--chunk-seconds='0'", "auto")
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(tmp_path / "norun"), "--input",
                                   str(data / "c0.wav"), "--out", str(tmp_path)), "checkpoint not found")
    assert_one_line_error(run_wavediff("train", "--config", "tiny", "--data", str(tmp_path / "nodata"),
                                   "--out", str(tmp_path / "r2")), "data path not found")


def test_non_finite_audio_and_unusable_output_folders_end_in_one_line(trained_run, tmp_path):
    """A wav full of NaN is refused by name, never vocoded into noise; an output folder that
    cannot be created (under a regular file, or in /proc) is one line, not a traceback."""
    root, data, run = trained_run
    sf.write(tmp_path / "nan.wav", np.full(4000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(tmp_path / "nan.wav"),
                                   "--out", str(tmp_path / "v")), "nan.wav", "NaN")
    assert not list(tmp_path.rglob("v/*.wav"))
    bad_set = tmp_path / "set"
    bad_set.mkdir()
    sf.write(bad_set / "good.wav", tone_sweep(0.3, seed=3), SR)
    sf.write(bad_set / "nan.wav", np.full(4000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    assert_one_line_error(run_wavediff("evaluate", "--checkpoint", str(run), "--data", str(bad_set), "--steps", "2",
                                   "--out", str(tmp_path / "e")), "nan.wav", "NaN")
    (tmp_path / "a_file").write_text("not a folder\n")
    blocked = tmp_path / "a_file" / "out"
    assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c0.wav"),
                                   "--out", str(blocked)), "cannot use", str(blocked), "Not a directory")
    assert_one_line_error(run_wavediff("evaluate", "--checkpoint", str(run), "--data", str(data), "--steps", "2",
                                   "--limit", "1", "--out", str(blocked)), "cannot use", str(blocked))
    assert_one_line_error(run_wavediff("train", "--config", "tiny", "--data", str(data), "--out", str(blocked),
                                   "--max-steps", "1", "--no-progress", *MICRO), "cannot use", str(blocked))
    if os.path.isdir("/proc/self"):
        assert_one_line_error(run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c0.wav"),
                                       "--out", "/proc/x"), "cannot use", "'/proc/x'")


def test_cli_generate_writes_labelled_clips_reproducibly(class_run, tmp_path, capsys):
    for out in ("a", "b"):
        assert main(["generate", "--checkpoint", str(class_run), "--n", "3", "--label", "High", "--seed", "4",
                     "--out", str(tmp_path / out)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert files == ["high_0000.wav", "high_0001.wav", "high_0002.wav"]
    assert (tmp_path / "a" / "samples.tsv").read_text().splitlines() == [
        "path\tlabel", "high_0000.wav\thigh", "high_0001.wav\thigh", "high_0002.wav\thigh"]
    for f in files:
        a, sr = sf.read(tmp_path / "a" / f)
        b, _ = sf.read(tmp_path / "b" / f)
        assert sr == CLIP_SR and len(a) == CLIP and np.array_equal(a, b)
    assert main(["generate", "--checkpoint", str(class_run), "--n", "1", "--label", "eleven",
                 "--out", str(tmp_path / "c")]) == 2
    assert "known labels: ['high', 'low', 'mid']" in capsys.readouterr().err


def test_cli_samplers_on_vocode_and_generate(trained_run, class_run, tmp_path):
    """``--sampler ddim|dpm-solver``: the same audio streaming or in one pass, not the ancestral chain's;
    generate's clips equal the pipeline's with the same rule."""
    from wavediff.config import SamplerConfig
    from wavediff.pipelines import Synthesizer

    root, data, run = trained_run
    outs = {}
    for rule in ("ancestral", "dpm-solver"):
        for mode in ("none", "stream"):
            out = tmp_path / f"{rule}-{mode}"
            proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c1.wav"), "--out", str(out),
                                "--chunk-seconds", mode, "--precision", "fp32", "--sampler", rule, "consistency=none")
            assert proc.returncode == 0, proc.stderr
            outs[rule, mode] = sf.read(out / "c1.wav")[0]
    assert np.abs(outs["dpm-solver", "none"] - outs["dpm-solver", "stream"]).max() < 1e-4
    assert np.abs(outs["dpm-solver", "none"] - outs["ancestral", "none"]).max() > 1e-3
    assert main(["generate", "--checkpoint", str(class_run), "--n", "2", "--label", "low", "--seed", "1",
                 "--sampler", "ddim", "ddim_eta=0.5", "--out", str(tmp_path / "gen")]) == 0
    ref = Synthesizer.from_checkpoint(class_run, device="cpu").generate(
        2, labels="low", seed=1, sampler=SamplerConfig(method="ddim", ddim_eta=0.5))
    for i in range(2):
        clip, _ = sf.read(tmp_path / "gen" / f"low_{i:04d}.wav", dtype="float32")
        assert np.abs(clip - ref[i].numpy()).max() < 1e-3
    proc = run_wavediff("vocode", "--checkpoint", str(run), "--input", str(data / "c1.wav"), "--out", str(tmp_path),
                        "--sampler", "heun")
    assert_one_line_error(proc, "heun")
