"""The SC09 generative metrics against closed forms and known cases; the classifier and
`wavediff train-classifier` / `evaluate-generation` on tiny labelled tones."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wavediff.cli import main
from wavediff.errors import WavediffError
from wavediff.metrics import generative as gm
from wavediff.metrics.audio_classifier import AudioClassifier
from wavediff.training.classifier_trainer import ClassifierTraining, train_classifier

from test_generation import SR, labelled_tone, write_digits


def one_hot(labels, k, confidence=1.0):
    p = np.full((len(labels), k), (1 - confidence) / (k - 1) if k > 1 else 0.0)
    p[np.arange(len(labels)), labels] = confidence
    return p


# ---------------------------------------------------------------- closed forms
def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert gm.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(2000, 8))
    assert gm.fid(feats, feats) < 1e-6
    other = rng.normal(size=(2000, 8))
    assert gm.fid(feats, other) < 0.05                         # same law, sampling noise only
    assert gm.fid(feats, other + 1.0) == pytest.approx(8.0, rel=0.05)   # |shift|^2 = 8


def test_inception_score_known_cases():
    k = 10
    assert gm.inception_score(one_hot(np.zeros(100, int), k)) == pytest.approx(1.0)   # one class
    assert gm.inception_score(np.full((50, k), 1 / k)) == pytest.approx(1.0)          # no confidence
    balanced = one_hot(np.arange(1000) % k, k)
    assert gm.inception_score(balanced) == pytest.approx(k, rel=1e-6)                 # balanced, confident
    soft = one_hot(np.arange(1000) % k, k, confidence=0.9)
    expected = math.exp(0.9 * math.log(0.9 * k) + 0.1 * math.log(0.1 / 9 * k))
    assert gm.inception_score(soft) == pytest.approx(expected, rel=1e-6)


def test_modified_inception_score_measures_diversity_inside_a_class():
    same = one_hot(np.zeros(20, int), 3, confidence=0.8)
    assert gm.modified_inception_score(same) == pytest.approx(1.0)    # identical outputs
    p, q = np.array([0.9, 0.1]), np.array([0.6, 0.4])
    kl = lambda a, b: float(np.sum(a * np.log(a / b)))                  # noqa: E731
    mis = gm.modified_inception_score(np.stack([p, q]))
    assert mis == pytest.approx(math.exp((kl(p, q) + kl(q, p)) / 2))
    # pairs across predicted classes do not count
    assert gm.modified_inception_score(np.stack([p, q, q[::-1]])) == pytest.approx(mis)
    assert math.isnan(gm.modified_inception_score(np.eye(3)))


def test_am_score_known_cases():
    k = 10
    uniform = np.full(k, 1 / k)
    assert gm.am_score(one_hot(np.arange(100) % k, k), uniform) == pytest.approx(0.0, abs=1e-9)
    assert gm.am_score(np.full((30, k), 1 / k), uniform) == pytest.approx(math.log(k))
    # all clips confidently one class: KL(uniform || one-hot marginal), large
    assert gm.am_score(one_hot(np.zeros(30, int), k), uniform) > 10


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    pts = np.concatenate([c + 0.1 * rng.normal(size=(50, 2)) for c in centres])
    found = gm.kmeans(pts, 3, seed=0)
    assert np.sort(np.round(found).astype(int), axis=0).tolist() == np.sort(centres.astype(int), axis=0).tolist()


def test_ndb_is_low_for_the_same_distribution_and_high_for_another():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(3000, 4))
    assert gm.ndb_over_k(real, rng.normal(size=(1000, 4)), k=20) <= 0.15      # alpha 0.05 false positives
    assert gm.ndb_over_k(real, rng.normal(size=(1000, 4)) * 0.2 + 2.0, k=20) >= 0.8


def test_ndb_uses_a_two_proportion_z_test():
    centroids = np.array([[0.0], [10.0]])
    real = np.array([[0.0]] * 50 + [[10.0]] * 50)
    # 60/40 against 50/50: pooled p = 0.55 (n 100 + 100), z = 0.1 / sqrt(.55 * .45 * .02) = 1.42 < 1.96
    gen = np.array([[0.0]] * 60 + [[10.0]] * 40)
    assert gm.ndb_over_k(real, gen, centroids=centroids) == 0.0
    # 65/35: z = 0.15 / sqrt(.575 * .425 * .02) = 2.14 > 1.96: both bins differ
    gen = np.array([[0.0]] * 65 + [[10.0]] * 35)
    assert gm.ndb_over_k(real, gen, centroids=centroids) == 1.0


def test_accuracy_and_fid_class():
    probs = one_hot(np.array([0, 1, 1, 2]), 3)
    assert gm.accuracy(probs, np.array([0, 1, 2, 2])) == 0.75
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(600, 3))
    labels = np.arange(600) % 3
    mean, std, per_class = gm.fid_per_class(feats, labels, feats, labels, 3)
    assert mean < 1e-6 and std < 1e-6 and len(per_class) == 3
    with pytest.raises(WavediffError, match="class 2"):
        gm.fid_per_class(feats, labels, feats[:4], np.array([0, 0, 1, 1]), 3)


def test_metrics_reject_non_distributions():
    with pytest.raises(WavediffError, match="probability"):
        gm.inception_score(np.array([[0.5, 0.6]]))


# ---------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def tone_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    return write_digits(root / "train", per_class=24, seed=1), write_digits(root / "test", per_class=8, seed=2)


@pytest.fixture(scope="module")
def classifier_dir(tone_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "classifier"
    settings = ClassifierTraining(epochs=8, batch_size=16, sample_rate=SR, clip_seconds=0.24, width=16,
                                  learning_rate=5e-3)
    train_classifier(tone_data[0], tone_data[1], out, settings=settings, progress=False)
    return out


def test_the_classifier_learns_the_tones_and_reports_its_test_accuracy(classifier_dir):
    clf = AudioClassifier.load(classifier_dir)
    assert clf.class_names == ("high", "low", "mid")
    assert clf.info["test_accuracy"] >= 0.9, clf.info
    assert clf.info["test_clips"] == 24
    probs, feats = clf.predict([labelled_tone(2400, 0.24, 99), labelled_tone(300, 0.1, 98)])
    assert probs.shape == (2, 3) and feats.shape == (2, clf.model.feature_dim)
    assert probs.argmax(1).tolist() == [0, 1]


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


def test_evaluate_generation_puts_ceiling_above_floor(classifier_dir, tone_data, tmp_path, capsys):
    from test_generation import clip_config
    from wavediff.training.trainer import Trainer

    Trainer(clip_config("class"), tone_data[0], tmp_path / "run", progress=False).fit(max_steps=1)
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--n", "6", "--out", str(tmp_path / "gen")]) == 0
    out = tmp_path / "report"
    assert main(["evaluate-generation", "--classifier", str(classifier_dir), "--train", str(tone_data[0]),
                 "--test", str(tone_data[1]), "--noise", "--samples", str(tmp_path / "gen"),
                 "--checkpoint", str(tmp_path / "run"), "--name", "tiny", "--guidance", "1", "3",
                 "--n", "6", "--per-class", "2", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())["results"]
    names = [r["name"] for r in results]
    assert names == ["test split (ceiling)", "white noise (floor)", "tiny", "tiny, guidance 3", "gen"]
    ceiling, floor = results[0]["metrics"], results[1]["metrics"]
    assert ceiling["accuracy"] >= 0.9 and ceiling["fid"] < floor["fid"]
    assert ceiling["is"] > floor["is"] and ceiling["am"] < floor["am"]
    assert results[2]["metrics"]["n"] == 6 and "fid_class" in results[2]["metrics"]
    assert "| test split (ceiling) |" in table and "FID-class" in table
    assert len(list((out / "examples" / "tiny").glob("*.wav"))) == 6      # 2 per class kept
