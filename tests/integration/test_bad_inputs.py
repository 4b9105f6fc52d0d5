"""Bad training input is skipped or fixed, logged once and counted; loaders survive fuzzing."""
from __future__ import annotations

import io
import json
import logging
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

from wavediff.audio.mel import MelFrontend
from wavediff.checkpoint import load_training_state, resolve_checkpoint
from wavediff.config import MEL_PRESETS
from wavediff.data.datasets import VocoderDataset
from wavediff.data.inspection import BadAudio, read_training_audio
from wavediff.data.labels import read_labelled_entries
from wavediff.data.manifest import read_entries
from wavediff.errors import WavediffError
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

from helpers import SR, make_bad_corpus, tone_sweep, write_tone_files


# ----------------------------------------------------------------------------- the mel cache
def _fill_cache(args: tuple[list[str], str, int]) -> int:
    paths, cache, rotate = args
    from wavediff.data.manifest import AudioEntry

    ds = VocoderDataset([AudioEntry(Path(p)) for p in paths], MelFrontend(MEL_PRESETS["diffwave"]), 8, cache)
    order = list(range(len(paths)))
    order = order[rotate:] + order[:rotate]
    for _ in range(3):
        for i in order:
            Path(ds._cache_path(i)).unlink(missing_ok=True)            # race: delete and rewrite the same entries
            ds.mel(i)
    return len(order)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------- fuzzing
def _wav_bytes(channels: int, rate: int, subtype: str, samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(samples[:, None], channels, axis=1), rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


@st.composite
def damaged_audio(draw: st.DrawFn) -> bytes:
    """Random bytes, or a real WAV/FLAC with random parameters, NaN/Inf, truncation and flipped bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=4000))
    channels = draw(st.integers(1, 3))
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    subtype = draw(st.sampled_from(["PCM_16", "FLOAT", "PCM_24"]))
    n = draw(st.integers(0, 3000))
    samples = np.sin(np.arange(n, dtype=np.float32) * 0.05) * 0.5
    if subtype == "FLOAT" and n and draw(st.booleans()):
        samples[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    data = bytearray(_wav_bytes(channels, rate, subtype, samples))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data if cut is None else data[:cut])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@st.composite
def damaged_manifest(draw: st.DrawFn, names: list[str]) -> tuple[str, str]:
    suffix = draw(st.sampled_from([".tsv", ".csv", ".txt"]))
    if draw(st.booleans()):
        return suffix, draw(st.text(max_size=300))
    sep = draw(st.sampled_from(["\t", ",", "\t", ",", "|", ";"]))
    columns = draw(st.lists(st.sampled_from(["file", "label", "speaker", "", "wav", "digit"]), max_size=3))
    if draw(st.integers(0, 3)):                              # mostly a table with a path column
        columns.insert(draw(st.integers(0, len(columns))), "path")
    junk = st.one_of(st.text(max_size=12), st.just("../../etc/passwd"), st.just("\x00"), st.just(""))
    cell = st.one_of(st.sampled_from(names), st.sampled_from(names), junk)
    rows = draw(st.lists(st.lists(cell, min_size=len(columns), max_size=len(columns) + 1)
                         | st.lists(cell, max_size=5), max_size=6))
    return suffix, "\n".join(sep.join(r) for r in [columns, *rows])


DIGIT_FILES = [f"Seven_{i}_nohash_0.wav" for i in range(3)]


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz_manifest")
    for i, name in enumerate(DIGIT_FILES):
        sf.write(tmp / name, tone_sweep(0.1, seed=i), SR)
    return tmp


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    from wavediff.config import load_config

    root = tmp_path_factory.mktemp("fuzz_ckpt")
    audio = write_tone_files(root / "audio", [0.3] * 5)
    cfg = load_config("tiny", ["model.residual_layers=2", "model.residual_channels=4", "model.dilation_cycle=2",
                               "data.crop_frames=8", "data.val_count=0", "train.batch_size=2",
                               "train.checkpoint_every=2"])
    Trainer(cfg, audio, root / "run", progress=False).fit(2)
    return resolve_checkpoint(root / "run")


def _mutate_json(draw: st.DrawFn, text: str) -> str:
    data = json.loads(text)
    section = draw(st.sampled_from(sorted(k for k, v in data.items() if isinstance(v, dict))))
    key = draw(st.sampled_from(sorted(data[section])))
    value = draw(st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 6), st.floats(allow_nan=True),
                           st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
    if draw(st.booleans()):
        data[section][key] = value
    else:
        del data[section][key]
    return json.dumps(data)


def test_a_run_on_bad_files_skips_or_fixes_each_logs_it_once_and_counts_it(tmp_path, micro_config, caplog):
    expected = make_bad_corpus(tmp_path / "bad")
    caplog.set_level(logging.INFO)
    cfg = micro_config.with_overrides(["data.crop_frames=16"])        # 4096 samples: short.wav (441) is short
    trainer = Trainer(cfg, tmp_path / "bad", tmp_path / "run", progress=False)
    result = trainer.fit(3)                                           # 11 usable: 9 train -> 2 steps per epoch
    assert result.final_step == 3 and all(np.isfinite(l) for _, l in result.losses)
    counts = trainer.input_report.counts
    assert {k: counts[k] for k in counts if counts[k]} == {"unreadable": 3, "empty": 1, "non-finite": 2,
                                                           "resampled": 1, "stereo": 1, "short": 1}
    used = {e.path.name for e in trainer.train_set.entries} | {e.path.name for e in trainer.val_set.entries}
    assert used == {f"good_{i}.wav" for i in range(8)} | {"rate44k.wav", "stereo.wav", "short.wav"}
    for name, kind in expected.items():                               # one log line per bad file
        lines = [r.getMessage() for r in caplog.records if name in r.getMessage() and kind in r.getMessage()]
        assert len(lines) == 1, (name, lines)
        action = "fixed" if kind in ("resampled", "stereo", "short") else "skipped"
        assert lines[0].startswith(f"{action} {kind} audio")
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1 done")]
    assert summaries == ["epoch 1 done at step 2: 9 files; bad inputs skipped: 3 unreadable, 1 empty, "
                         "2 non-finite; fixed: 1 resampled, 1 stereo, 1 short; 0 item(s) replaced this epoch"]
    assert not any(r.exc_info for r in caplog.records)                 # no tracebacks


def test_a_file_that_breaks_during_training_is_replaced_and_counted(tmp_path, audio_dir, micro_config, caplog):
    trainer = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False)
    victim = trainer.train_set.entries[0].path
    victim.write_bytes(b"gone bad")
    item = trainer.train_set[(0, 123)]
    assert bool(item["replaced"]) and int(item["seed"]) == 123
    assert torch.equal(item["audio"], trainer.train_set[(1, 123)]["audio"])   # the next file, same draws
    assert any("replaced an item" in r.getMessage() for r in caplog.records)
    result = trainer.fit(12)                                                  # keeps training
    assert result.final_step == 12 and trainer.input_report.counts["replaced"] > 0


def test_a_manifest_listing_a_missing_file_trains_on_the_rest(tmp_path, audio_dir, micro_config):
    names = sorted(p.name for p in audio_dir.glob("*.wav"))
    (audio_dir / "list.tsv").write_text("path\n" + "".join(f"{n}\n" for n in names) + "deleted.wav\n")
    with pytest.raises(WavediffError, match="lists 1 missing file"):
        read_entries(audio_dir / "list.tsv")                       # elsewhere (e.g. evaluation) it is an error
    trainer = Trainer(micro_config, audio_dir / "list.tsv", tmp_path / "run", progress=False)
    assert trainer.input_report.counts["unreadable"] == 1
    assert len(trainer.train_set) + len(trainer.val_set) == len(names)


def test_no_usable_audio_is_one_clear_error(tmp_path, micro_config):
    folder = tmp_path / "all_bad"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"nothing")
    sf.write(folder / "b.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(WavediffError, match=r"none of the 2 audio files .* can be used \(bad inputs skipped: "
                                            r"1 unreadable, 1 empty"):
        Trainer(micro_config, folder, tmp_path / "run", progress=False)


def test_the_mel_cache_is_safe_with_several_processes_writing_it(tmp_path, audio_dir):
    paths = sorted(str(p) for p in audio_dir.glob("*.wav"))
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_fill_cache, [(paths, str(cache), r) for r in range(4)]) == [len(paths)] * 4
    assert not list(cache.glob(".*")) and len(list(cache.glob("*.npy"))) == len(paths)
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    ds = VocoderDataset(read_entries(audio_dir), fe, 8, cache)
    for i in range(len(ds)):
        cached = np.load(ds._cache_path(i), allow_pickle=False)
        torch.testing.assert_close(torch.from_numpy(cached), fe(torch.from_numpy(ds.audio(i)))[:, :cached.shape[1]])
    ds._cache_path(0).write_bytes(b"\x93NUMPY garbage")                # a damaged entry is recomputed
    assert ds.mel(0).shape == cached.shape[:1] + ds.mel(0).shape[1:]


def test_dataloader_workers_give_the_same_training(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "w0", progress=False, workers=0).fit(6)
    Trainer(micro_config, audio_dir, tmp_path / "w2", progress=False, workers=2).fit(6)
    a = load_training_state(resolve_checkpoint(tmp_path / "w0"))["model"]
    b = load_training_state(resolve_checkpoint(tmp_path / "w2"))["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


@FUZZ
@given(data=damaged_audio(), min_samples=st.integers(0, 5000), start=st.integers(0, 4000))
def test_fuzz_the_audio_loader(scratch, data: bytes, min_samples: int, start: int) -> None:
    path = scratch / "input.wav"
    path.write_bytes(data)
    try:
        audio, info = read_training_audio(path, SR, min_samples=min_samples)
    except BadAudio as exc:
        event(f"skipped: {exc.kind}")
        return
    event("read" + "".join(f", {k}" for k in sorted(info.fixes)))
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()
    assert audio.shape[0] >= min_samples
    crop, _ = read_training_audio(path, SR, start=start, stop=start + 256)
    assert crop.shape == (256,) and np.isfinite(crop).all()


@FUZZ
@given(manifest=damaged_manifest(DIGIT_FILES))
def test_fuzz_the_manifest_loaders(listed, manifest: tuple[str, str]) -> None:
    suffix, text = manifest
    path = listed / f"list{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for reader in (read_entries, read_labelled_entries):
        for missing in ("error", "keep"):
            try:
                entries = reader(path, missing=missing)
            except WavediffError:
                event(f"{reader.__name__}, missing={missing}: refused")
                continue
            event(f"{reader.__name__}, missing={missing}: read")
            assert entries
            if missing == "error":
                assert all(e.path.is_file() for e in entries)
            for entry in entries:                    # what the trainer's data check then does with each
                try:
                    audio, _ = read_training_audio(entry.path, SR)
                    assert np.isfinite(audio).all()
                except BadAudio as exc:
                    assert exc.kind == "unreadable"


@FUZZ
@given(data=st.data())
def test_fuzz_the_checkpoint_loader(trained_checkpoint, scratch, data: st.DataObject) -> None:
    originals = {p.name: p.read_bytes() for p in trained_checkpoint.iterdir()}
    work = scratch / "ckpt"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    target = work / trained_checkpoint.name
    shutil.copytree(trained_checkpoint, target)
    name = data.draw(st.sampled_from(sorted(originals)))
    blob = originals[name]
    how = data.draw(st.sampled_from(["json", "truncate", "flip", "random"]) if name == "config.json"
                    else st.sampled_from(["truncate", "flip", "random"]))
    if how == "json":
        blob = _mutate_json(data.draw, blob.decode()).encode()
    elif how == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        blob = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        blob = bytes(blob)
    else:
        blob = data.draw(st.binary(max_size=2000))
    (target / name).write_bytes(blob)
    outcome = []
    try:
        vocoder = Vocoder.from_checkpoint(target, device="cpu")
        out = vocoder.vocode(torch.zeros(vocoder.config.mel.n_mels, 3), 2,
                             generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out).all()
        outcome.append("weights loaded")
    except WavediffError:
        outcome.append("weights refused")
    try:
        load_training_state(target)
        outcome.append("state loaded")
    except WavediffError:
        outcome.append("state refused")
    event(f"{name} {how}: {', '.join(outcome)}")
    shutil.rmtree(work)
