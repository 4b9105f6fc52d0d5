"""wavediff.training.classifier_trainer: the classifier learns tiny labelled tones and reports its
test accuracy."""
from __future__ import annotations

from wavediff.metrics.audio_classifier import AudioClassifier

from helpers import labelled_tone


def test_the_classifier_learns_the_tones_and_reports_its_test_accuracy(classifier_dir):
    clf = AudioClassifier.load(classifier_dir)
    assert clf.class_names == ("high", "low", "mid")
    assert clf.info["test_accuracy"] >= 0.9, clf.info
    assert clf.info["test_clips"] == 24
    probs, feats = clf.predict([labelled_tone(2400, 0.24, 99), labelled_tone(300, 0.1, 98)])
    assert probs.shape == (2, 3) and feats.shape == (2, clf.model.feature_dim)
    assert probs.argmax(1).tolist() == [0, 1]
