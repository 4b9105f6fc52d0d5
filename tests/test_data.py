from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SR, tone_sweep
from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS
from wavediff.data import VocoderDataset, read_entries, split_entries
from wavediff.errors import WavediffError


def test_folder_and_manifests(tmp_path, audio_dir):
    assert len(read_entries(audio_dir)) == 11
    (audio_dir / "list.tsv").write_text("id\tpath\tlabel\na\tclip_00.wav\tyes\nb\tclip_01.wav\tno\n")
    entries = read_entries(audio_dir / "list.tsv")
    assert [e.path.name for e in entries] == ["clip_00.wav", "clip_01.wav"] and entries[0].label == "yes"
    (audio_dir / "list.csv").write_text("file,speaker\nclip_02.wav,x\n")
    assert read_entries(audio_dir / "list.csv")[0].path.name == "clip_02.wav"
    lj = tmp_path / "LJ"
    (lj / "wavs").mkdir(parents=True)
    sf.write(lj / "wavs" / "LJ001-0001.wav", tone_sweep(0.3), SR)
    (lj / "metadata.csv").write_text("LJ001-0001|Printing, in the only sense|Printing, in the only sense\n")
    assert read_entries(lj / "metadata.csv")[0].path == lj / "wavs" / "LJ001-0001.wav"


def test_manifest_errors_are_named(tmp_path, audio_dir):
    (tmp_path / "bad.tsv").write_text("id\ttext\na\thello\n")
    with pytest.raises(WavediffError, match="no path column"):
        read_entries(tmp_path / "bad.tsv")
    (tmp_path / "gone.tsv").write_text("path\nnothere.wav\n")
    with pytest.raises(WavediffError, match="missing file"):
        read_entries(tmp_path / "gone.tsv")
    with pytest.raises(WavediffError, match="not found"):
        read_entries(tmp_path / "nowhere")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(WavediffError, match="no audio files"):
        read_entries(tmp_path / "emptydir")


def test_split_is_deterministic_and_disjoint(audio_dir):
    entries = read_entries(audio_dir)
    train, val = split_entries(entries, val_count=2, val_fraction=0.0, seed=3)
    assert len(val) == 2 and len(train) == 9 and not set(train) & set(val)
    assert split_entries(entries, 2, 0.0, seed=3) == (train, val)


def test_crops_are_aligned_to_mel_frames_and_cached_in_the_run(tmp_path, audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    cache = tmp_path / "run" / "cache"
    ds = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)
    audio, mel = ds.crop(3, start_frame=5)
    assert audio.shape == (8 * 256,) and mel.shape == (80, 8)
    full = fe(torch.from_numpy(ds.audio(3)))
    torch.testing.assert_close(mel, full[:, 5:13])
    np.testing.assert_array_equal(audio.numpy(), ds.audio(3)[5 * 256:13 * 256])
    for i in range(len(entries)):
        ds.check(i)
    assert len(list(cache.glob("*.npy"))) == len(entries)
    assert not list(audio_dir.glob("*.npy"))  # nothing written beside the user's audio
    again = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)  # from the cache
    np.testing.assert_array_equal(again.mel(3), ds.mel(3))


def test_short_clips_are_padded_not_dropped(audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    ds = VocoderDataset(entries, fe, crop_frames=16)
    short = [i for i, e in enumerate(entries) if e.path.name == "short.wav"][0]
    assert len(ds) == len(entries)
    audio, mel = ds.crop(short, torch.Generator().manual_seed(0))
    assert audio.shape == (16 * 256,) and mel.shape == (80, 16)
    assert torch.count_nonzero(audio[int(0.05 * SR) + 1:]) == 0  # zero padding after the clip
    b_audio, b_mel = ds.batch([0, short, 2], torch.Generator().manual_seed(0))
    assert b_audio.shape == (3, 4096) and b_mel.shape == (3, 80, 16)
