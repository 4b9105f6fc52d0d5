"""wavediff.models.resnext_classifier: the metrics' spectrogram CNN: its shapes, named setting and
input errors, and in evaluation mode an item scores the same alone as in a batch."""
from __future__ import annotations

import pytest
import torch

from wavediff.errors import WavediffError
from wavediff.models.resnext_classifier import ClassifierConfig, SpectrogramClassifier


def test_logits_and_features_have_the_documented_shapes():
    model = SpectrogramClassifier(ClassifierConfig(num_classes=5, n_mels=32, width=16, cardinality=4))
    x = torch.randn(3, 32, 40)
    assert model(x).shape == (3, 5)
    assert model.features(x).shape == (3, 8 * 16) and model.feature_dim == 128


def test_in_evaluation_mode_an_item_scores_the_same_alone_and_in_a_batch():
    torch.manual_seed(0)
    model = SpectrogramClassifier(ClassifierConfig(num_classes=3, n_mels=16, width=8, cardinality=4))
    model.train()
    model(torch.randn(8, 16, 24))             # moves the batch-norm running statistics off their start
    model.eval()
    batch = torch.randn(4, 16, 24)
    torch.testing.assert_close(model(batch)[2:3], model(batch[2:3]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"num_classes": 1}, "num_classes=1 must be >= 2"),
                                           ({"num_classes": 3, "width": 10, "cardinality": 4},
                                            "width=10 must be a multiple of cardinality=4")])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(WavediffError, match=match):
        ClassifierConfig(**kwargs)


def test_an_input_of_the_wrong_shape_is_refused():
    model = SpectrogramClassifier(ClassifierConfig(num_classes=3, n_mels=16, width=8, cardinality=4))
    with pytest.raises(WavediffError, match=r"must be \(B, 16, frames\), got \(2, 20, 10\)"):
        model(torch.randn(2, 20, 10))
    with pytest.raises(WavediffError, match=r"got \(16, 10\)"):
        model(torch.randn(16, 10))
