"""wavediff.metrics.audio_classifier: a saved classifier loads to the same outputs and refuses
mismatched files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wavediff.errors import WavediffError
from wavediff.metrics.audio_classifier import AudioClassifier

from helpers import labelled_tone


def test_a_saved_classifier_loads_to_the_same_outputs_and_refuses_mismatches(classifier_dir, tmp_path):
    clf = AudioClassifier.load(classifier_dir)
    clips = np.stack([labelled_tone(900, 0.24, i)[:1920] for i in range(3)])
    again = AudioClassifier.load(clf.save(tmp_path / "copy"))
    np.testing.assert_array_equal(clf.predict(clips)[0], again.predict(clips)[0])
    meta = json.loads((tmp_path / "copy" / "classifier.json").read_text())
    meta["classifier"]["width"] = 24
    (tmp_path / "copy" / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(WavediffError, match="do not match its config"):
        AudioClassifier.load(tmp_path / "copy")
    with pytest.raises(WavediffError, match="not a classifier folder"):
        AudioClassifier.load(tmp_path)
