"""wavediff.metrics.generative: the SC09 generative metrics against closed forms and known cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wavediff.errors import WavediffError
from wavediff.metrics import generative as gm


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
