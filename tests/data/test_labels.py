"""wavediff.data.labels: labels from Speech Commands names, label folders and manifest columns;
the class order and label lookup."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from wavediff.data.labels import class_order, label_from_path, label_index, read_labelled_entries
from wavediff.errors import WavediffError

from helpers import CLIP_SR, labelled_tone


# ---------------------------------------------------------------- labels and data
def test_labels_come_from_speech_commands_names_and_label_folders(tmp_path):
    assert label_from_path(Path("x/Seven_0a1b2c3d_nohash_0.wav")) == "seven"
    assert label_from_path(tmp_path / "yes" / "a.wav", tmp_path) == "yes"
    assert label_from_path(tmp_path / "a.wav", tmp_path) is None
    assert label_from_path(tmp_path / "deep" / "er" / "a.wav", tmp_path) is None
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        sf.write(tmp_path / word / "clip.wav", labelled_tone(500, 0.1, 0), CLIP_SR)
    assert sorted(e.label for e in read_labelled_entries(tmp_path)) == ["no", "yes"]


def test_a_manifest_label_column_comes_first(tmp_path):
    sf.write(tmp_path / "Seven_00_nohash_0.wav", labelled_tone(500, 0.1, 0), CLIP_SR)
    (tmp_path / "m.tsv").write_text("path\tlabel\nSeven_00_nohash_0.wav\tthree\n")
    assert [e.label for e in read_labelled_entries(tmp_path / "m.tsv")] == ["three"]


def test_class_order_and_label_lookup():
    assert class_order(["two", "zero", "nine", "one"]) == ("zero", "one", "two", "nine")
    assert class_order(["10", "9", "1"]) == ("1", "9", "10")
    assert class_order(["yes", "no", "go"]) == ("go", "no", "yes")
    names = ("zero", "one", "two")
    assert label_index("Two", names) == 2 and label_index(1, names) == 1 and label_index("0", names) == 0
    with pytest.raises(WavediffError, match=r"unknown label 'eleven'; known labels: \['zero', 'one', 'two'\]"):
        label_index("eleven", names)
    with pytest.raises(WavediffError, match="out of range"):
        label_index(3, names)
