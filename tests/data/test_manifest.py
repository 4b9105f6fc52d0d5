"""wavediff.data.manifest: folders and manifests read into entries, named errors, a deterministic
disjoint split."""
from __future__ import annotations

import pytest
import soundfile as sf

from wavediff.data import read_entries, split_entries
from wavediff.errors import WavediffError

from helpers import SR, tone_sweep


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
