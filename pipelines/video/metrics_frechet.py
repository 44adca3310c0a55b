"""The Fréchet distance between two feature sets' Gaussians (FID and FVD share it), and running
feature statistics so that no feature set has to fit in memory.
"""

from __future__ import annotations

import numpy as np
import torch


# The expensive term is tr((Σ1 Σ2)^½). Written with a factor Σ1 = H Hᵀ (H [D, r]), the product
# H (Hᵀ Σ2) has the non-zero eigenvalues of Hᵀ Σ2 H, an r × r symmetric PSD matrix: the trace is
# the sum of the square roots of its eigenvalues. This stays real and finite when the covariances
# are singular (fewer samples than feature dims), where `sqrtm` of the non-symmetric product can
# come out complex or non-finite. H comes from Σ1's eigendecomposition, or directly from the
# centred samples while there are few of them (then r ≤ n − 1 and no D × D decomposition runs).

_EPS = np.finfo(np.float64).eps


def _symmetrize(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2


def cov_factor(sigma: np.ndarray) -> np.ndarray:
    """H [D, r] with Σ = H Hᵀ, from the eigendecomposition; numerically-zero directions dropped."""
    w, v = np.linalg.eigh(_symmetrize(sigma))
    keep = w > max(w.max(), 0.0) * len(w) * _EPS
    return v[:, keep] * np.sqrt(w[keep])


def _trace_sqrt_factored(h1: np.ndarray, sigma2: np.ndarray | None = None, h2: np.ndarray | None = None) -> float:
    """tr((Σ1 Σ2)^½) with Σ1 = h1 h1ᵀ, and Σ2 given as a matrix or as a factor h2."""
    if h2 is not None:  # Hᵀ Σ2 H = (h1ᵀ h2)(h1ᵀ h2)ᵀ: the square roots of its eigenvalues are singular values
        return float(np.linalg.svd(h1.T @ h2, compute_uv=False).sum())
    ev = np.linalg.eigvalsh(_symmetrize(h1.T @ sigma2 @ h1))
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eig") -> float:
    """tr((Σ1 Σ2)^½) for covariance matrices [D, D].

    "eig" (default): through a factor of Σ1 (see above). "sqrtm": scipy.linalg.sqrtm of the
    product, handled as pytorch-fid does: an ε·I offset when the result is not finite, and the
    real part once the imaginary part is found negligible.
    """
    if method == "eig":
        return _trace_sqrt_factored(cov_factor(sigma1), sigma2)
    if method == "sqrtm":
        from scipy.linalg import sqrtm

        covmean = sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * 1e-6
            covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
                raise ValueError(f"sqrtm of the covariance product has a large imaginary part "
                                 f"({np.abs(covmean.imag).max():.3g}); use method='eig'")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise ValueError(f"unknown method {method!r}; use 'eig' or 'sqrtm'")


def _combine(mu1: np.ndarray, tr1: float, mu2: np.ndarray, tr2: float, tr_sqrt: float) -> float:
    # Clamped at 0: identical sets can land a few ulps below it.
    diff = mu1 - mu2
    return float(max(diff @ diff + tr1 + tr2 - 2.0 * tr_sqrt, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eig") -> float:
    """d² = |μ1 − μ2|² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) between N(μ1, Σ1) and N(μ2, Σ2); μ [D], Σ [D, D]."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: μ {mu1.shape} / {mu2.shape}, Σ {sigma1.shape} / {sigma2.shape}")
    return _combine(mu1, np.trace(sigma1), mu2, np.trace(sigma2), trace_sqrt_product(sigma1, sigma2, method))


class FeatureStats:
    """Running mean and covariance of features [N, D], so no feature set has to fit in memory.

    While n ≤ D the rows themselves are kept (no more memory than D × D sums): they factor the
    covariance directly, which the Fréchet distance uses instead of a D × D decomposition. Past
    D they turn into sums around the first batch's mean (the plain Σ x xᵀ − n μ μᵀ loses digits
    when the mean is large compared with the spread). Covariance is unbiased (ddof 1, as np.cov).
    """

    def __init__(self, dim: int) -> None:
        self.dim, self.n = dim, 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim)
        self._outer: np.ndarray | None = None
        self._rows: list[np.ndarray] | None = []

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must be [N, {self.dim}], got {list(x.shape)}")
        if self._shift is None:
            self._shift = x.mean(0)
        x = x - self._shift
        self.n += len(x)
        self._sum += x.sum(0)
        if self._rows is None:
            self._outer += x.T @ x
            return
        self._rows.append(x)
        if self.n > self.dim:
            rows = np.concatenate(self._rows)
            self._outer, self._rows = rows.T @ rows, None

    def mean(self) -> np.ndarray:
        return self._shift + self._sum / self.n

    def sample_factor(self) -> np.ndarray | None:
        """H [D, n] with cov() = H Hᵀ (the centred rows over √(n − 1)) while the rows are kept."""
        if self._rows is None:
            return None
        a = np.concatenate(self._rows)
        return (a - a.mean(0)).T / np.sqrt(self.n - 1)

    def cov(self) -> np.ndarray:
        h = self.sample_factor()
        if h is not None:
            return h @ h.T
        m = self._sum / self.n
        return (self._outer - self.n * np.outer(m, m)) / (self.n - 1)

    def cov_trace(self) -> float:
        h = self.sample_factor()
        return float((h * h).sum()) if h is not None else float(np.trace(self.cov()))


def frechet_distance_of(a: FeatureStats, b: FeatureStats) -> float:
    """The Fréchet distance between two feature sets' Gaussians (the "eig" method)."""
    ha, hb = a.sample_factor(), b.sample_factor()
    if ha is None and hb is not None:  # tr((Σa Σb)^½) = tr((Σb Σa)^½): factor the side with rows
        a, b, ha, hb = b, a, hb, ha
    if ha is None:
        tr_sqrt = trace_sqrt_product(a.cov(), b.cov())
    else:
        tr_sqrt = _trace_sqrt_factored(ha, None if hb is not None else b.cov(), hb)
    return _combine(a.mean(), a.cov_trace(), b.mean(), b.cov_trace(), tr_sqrt)
