"""The generative metrics of DiffWave's SC09 experiments (its appendix), from a classifier.

Every function takes the classifier's softmax outputs ``probs (N, K)`` (rows sum to 1)
and/or its penultimate features ``(N, D)`` as numpy arrays.

- FID: Frechet distance between Gaussians fitted to real and generated features.
- IS = exp(E_x KL(p(y|x) || p(y))), p(y) the mean of ``probs``: high when each clip is
  classified confidently and the classes are used evenly (at most K).
- mIS (Gurumurthy et al. 2017) = exp(E_{x_i, x_j} KL(p(y|x_i) || p(y|x_j))) over pairs of
  generated clips with the same predicted class: rewards diversity inside a class.
- AM (Zhou et al. 2018) = KL(p_train(y) || p(y)) + E_x H(p(y|x)): low is good.
- NDB/K (Richardson & Weiss 2018): k-means (K = 50) on real training features; a bin is
  statistically different when a two-proportion z-test between the real and generated
  shares of it rejects at alpha (0.05); NDB/K is the share of such bins.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg

from wavediff.errors import WavediffError

_EPS = 1e-12


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise WavediffError(f"probs must have shape (N, K) with N >= 1, got {p.shape}")
    if np.any(p < -1e-9) or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise WavediffError("probs rows must be probability distributions (non-negative, summing to 1)")
    return np.clip(p, _EPS, 1.0)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``(N, D)`` features (N >= 2)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise WavediffError(f"features must have shape (N, D) with N >= 2, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
            singular = not np.isfinite(covmean).all()
        except scipy.linalg.LinAlgWarning:
            singular = True
    if singular:  # fewer clips than feature dimensions: regularise both sides slightly
        offset = np.eye(sigma1.shape[0]) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid(real_features: np.ndarray, generated_features: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two ``(N, D)`` feature sets."""
    return frechet_distance(*gaussian_stats(real_features), *gaussian_stats(generated_features))


def inception_score(probs: np.ndarray) -> float:
    """exp(mean_x KL(p(y|x) || p(y))): 1 for one class or uniform outputs, K for K equally used,
    confidently classified classes."""
    p = _check_probs(probs)
    marginal = p.mean(0, keepdims=True)
    return float(math.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def modified_inception_score(probs: np.ndarray) -> float:
    """exp of the mean KL(p(y|x_i) || p(y|x_j)) over ordered pairs i != j of clips with the
    same predicted class (NaN when no class is predicted twice)."""
    p = _check_probs(probs)
    logp = np.log(p)
    predicted = p.argmax(1)
    total, pairs = 0.0, 0
    for c in np.unique(predicted):
        rows = np.flatnonzero(predicted == c)
        m = len(rows)
        if m < 2:
            continue
        pc, lc = p[rows], logp[rows]
        # sum_{i,j} KL(p_i || p_j) = sum_i sum_y p_iy log p_iy * m - sum_{i,j} p_i . log p_j
        self_term = np.sum(pc * lc) * m
        cross = np.sum(pc @ lc.T)
        total += self_term - cross   # the i == j terms are zero
        pairs += m * (m - 1)
    if pairs == 0:
        return float("nan")
    return float(math.exp(total / pairs))


def am_score(probs: np.ndarray, reference_marginal: np.ndarray) -> float:
    """KL(p_train(y) || p(y)) + mean entropy of p(y|x); ``reference_marginal (K,)`` is the
    class distribution of the real training data (as the classifier sees it)."""
    p = _check_probs(probs)
    ref = np.clip(np.asarray(reference_marginal, dtype=np.float64), _EPS, 1.0)
    if ref.shape != (p.shape[1],):
        raise WavediffError(f"reference_marginal must have shape ({p.shape[1]},), got {ref.shape}")
    ref = ref / ref.sum()
    marginal = p.mean(0)
    kl = float(np.sum(ref * (np.log(ref) - np.log(marginal))))
    entropy = float(np.mean(-np.sum(p * np.log(p), axis=1)))
    return kl + entropy


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ initialisation; returns ``(k, D)`` centroids."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < k or k < 1:
        raise WavediffError(f"k-means needs at least k={k} points of shape (N, D), got {x.shape}")
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(len(x))]]
    d2 = np.sum((x - centroids[0]) ** 2, axis=1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centroids.append(x[rng.choice(len(x), p=probs)])
        d2 = np.minimum(d2, np.sum((x - centroids[-1]) ** 2, axis=1))
    c = np.stack(centroids)
    for _ in range(iterations):
        assign = nearest(x, c)
        new = np.stack([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid ``(N,)`` for each of ``(N, D)`` points."""
    d = (np.sum(points ** 2, axis=1, keepdims=True) - 2 * points @ centroids.T
         + np.sum(centroids ** 2, axis=1)[None, :])
    return d.argmin(1)


def ndb_over_k(real_features: np.ndarray, generated_features: np.ndarray, *, k: int = 50, alpha: float = 0.05,
               seed: int = 0, centroids: np.ndarray | None = None) -> float:
    """Share of the ``k`` k-means bins of the real features whose generated share differs
    significantly (two-sided two-proportion z-test at ``alpha``)."""
    from scipy.stats import norm

    real = np.asarray(real_features, dtype=np.float64)
    gen = np.asarray(generated_features, dtype=np.float64)
    c = kmeans(real, k, seed=seed) if centroids is None else centroids
    n1, n2 = len(real), len(gen)
    p1 = np.bincount(nearest(real, c), minlength=len(c)) / n1
    p2 = np.bincount(nearest(gen, c), minlength=len(c)) / n2
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n1 + 1 / n2), _EPS))
    z = np.abs(p1 - p2) / se
    return float(np.mean(z > norm.ppf(1 - alpha / 2)))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of clips whose most probable class is the requested label."""
    return float(np.mean(_check_probs(probs).argmax(1) == np.asarray(labels)))


def fid_per_class(real_features: np.ndarray, real_labels: np.ndarray, generated_features: np.ndarray,
                  generated_labels: np.ndarray, num_classes: int) -> tuple[float, float, list[float]]:
    """FID-class: FID between real and generated clips of each class; (mean, std, per class)."""
    values = []
    for c in range(num_classes):
        r = real_features[np.asarray(real_labels) == c]
        g = generated_features[np.asarray(generated_labels) == c]
        if len(r) < 2 or len(g) < 2:
            raise WavediffError(f"FID-class needs at least 2 real and 2 generated clips of class {c}, "
                                f"got {len(r)} and {len(g)}")
        values.append(fid(r, g))
    return float(np.mean(values)), float(np.std(values)), values
