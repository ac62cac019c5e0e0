"""K-means quantizer in JAX: greedy k-means++ init and jit-compiled Lloyd iterations.

Distances are computed ``chunk_size`` rows at a time (``||x||^2 - 2 x.c + ||c||^2``), so memory
stays at ``chunk_size * n_clusters`` floats whatever the number of rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

FORMAT_VERSION = 1


def _nearest_in_chunk(x: jax.Array, centers: jax.Array, c_sq: jax.Array):
    """Index and squared distance of the nearest center for every row of x (n, d).

    ``argmin`` is slow on XLA:CPU (a two-operand reduction), so the index is found as the
    smallest index whose score equals the row minimum: same result, ties to the lowest index.
    """
    scores = x @ (-2.0 * centers).T + c_sq[None, :]  # ||c||^2 - 2 x.c
    best = jnp.min(scores, axis=1)
    iota = jnp.arange(centers.shape[0], dtype=jnp.int32)[None, :]
    labels = jnp.min(jnp.where(scores == best[:, None], iota, centers.shape[0]), axis=1)
    return labels, jnp.maximum(best + jnp.sum(x * x, axis=1), 0.0)


def _assign(chunks: jax.Array, centers: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Nearest center and its squared distance for every row of chunks (m, c, d)."""
    c_sq = jnp.sum(centers * centers, axis=1)
    return jax.lax.map(lambda chunk: _nearest_in_chunk(chunk, centers, c_sq), chunks)


@partial(jax.jit, static_argnames=("n_clusters", "n_trials"))
def _kmeans_plus_plus(x: jax.Array, key: jax.Array, n_clusters: int, n_trials: int) -> jax.Array:
    """Greedy k-means++ (each step keeps the best of ``n_trials`` D^2-sampled candidates)."""
    n = x.shape[0]
    x_sq = jnp.sum(x * x, axis=1)

    def dists_to(idx):  # (t,) indices -> (t, n) squared distances
        c = x[idx]
        return jnp.maximum(x_sq[None, :] - 2.0 * c @ x.T + jnp.sum(c * c, axis=1)[:, None], 0.0)

    key, sub = jax.random.split(key)
    first = jax.random.randint(sub, (), 0, n)
    centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(x[first])
    closest = dists_to(first[None])[0]

    def step(i, state):
        centers, closest, key = state
        key, sub = jax.random.split(key)
        cumulative = jnp.cumsum(closest)
        draws = jax.random.uniform(sub, (n_trials,)) * cumulative[-1]
        candidates = jnp.clip(jnp.searchsorted(cumulative, draws), 0, n - 1)
        trial = jnp.minimum(closest[None, :], dists_to(candidates))
        best = jnp.argmin(jnp.sum(trial, axis=1))
        return centers.at[i].set(x[candidates[best]]), trial[best], key

    centers, _, _ = jax.lax.fori_loop(1, n_clusters, step, (centers, closest, key))
    return centers


@partial(jax.jit, static_argnames=("max_iter",))
def _lloyd(chunks, weights, centers, max_iter: int, tol: float, inertia_rtol: float):
    """Lloyd iterations until the squared center shift is <= tol, or an iteration lowers the
    inertia by less than inertia_rtol (relative); empty clusters keep their center. Returns
    centers, labels, per-row squared distances and the iterations run."""
    n_clusters, dim = centers.shape
    flat = chunks.reshape(-1, dim)
    w = weights.reshape(-1)

    def cond(state):
        _, shift, before, after, i = state
        improving = (i < 2) | (before - after > inertia_rtol * after)
        return (i < max_iter) & (shift > tol) & improving

    def body(state):
        centers, _, _, previous, i = state
        labels, dists = _assign(chunks, centers)
        labels = labels.reshape(-1)
        inertia = jnp.sum(dists.reshape(-1) * w)  # of the centers before this update
        sums = jax.ops.segment_sum(flat * w[:, None], labels, n_clusters)
        counts = jax.ops.segment_sum(w, labels, n_clusters)
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-12)[:, None], centers)
        return new, jnp.sum((new - centers) ** 2), previous, inertia, i + 1

    inf = jnp.array(jnp.inf, chunks.dtype)
    state = (centers, inf, inf, inf, jnp.array(0, jnp.int32))
    centers, _, _, _, n_iter = jax.lax.while_loop(cond, body, state)
    labels, dists = _assign(chunks, centers)
    return centers, labels.reshape(-1), dists.reshape(-1), n_iter


@jax.jit
def _predict_chunk(x: jax.Array, centers: jax.Array) -> tuple[jax.Array, jax.Array]:
    labels, dists = _assign(x[None], centers)
    return labels[0], dists[0]


def _as_matrix(features: np.ndarray | Sequence[np.ndarray], name: str = "features") -> np.ndarray:
    if isinstance(features, (list, tuple)):
        if not features:
            raise ValueError(f"{name} is an empty list")
        features = np.concatenate([np.asarray(f, dtype=np.float32) for f in features], axis=0)
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array (frames, dim), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


@dataclass
class KMeansQuantizer:
    """Vector quantizer mapping feature frames to the id of their nearest k-means center.

    ``standardize`` scales every feature dimension to zero mean / unit variance (statistics of
    the fitting data, saved with the centers) before clustering, so no dimension dominates.
    k-means++ and a first round of Lloyd's iterations run on at most
    ``max(init_sample, 3 * n_clusters)`` random rows, then Lloyd's iterations on all rows until
    the squared center shift drops below ``tol`` times the mean feature variance, an iteration
    lowers the inertia by less than ``inertia_rtol`` (relative), or ``max_iter`` is reached.
    Memory for distances: ``chunk_size * n_clusters`` floats.
    """

    n_clusters: int
    max_iter: int = 100
    tol: float = 1e-4
    seed: int = 0
    chunk_size: int = 4096
    init_sample: int = 10_000
    inertia_rtol: float = 1e-3
    standardize: bool = True
    centers: np.ndarray | None = field(default=None, repr=False)
    mean: np.ndarray | None = field(default=None, repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)
    inertia_: float | None = None
    n_iter_: int | None = None

    def __post_init__(self) -> None:
        for name in ("n_clusters", "max_iter", "chunk_size", "init_sample"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("tol", "inertia_rtol"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def dim(self) -> int:
        self._check_fitted()
        return int(self.centers.shape[1])

    def _check_fitted(self) -> None:
        if self.centers is None:
            raise RuntimeError("the KMeansQuantizer is not fitted: call fit() or load() first")

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale if self.standardize else x

    def fit(self, features: np.ndarray | Sequence[np.ndarray]) -> KMeansQuantizer:
        """Cluster ``features`` ((frames, dim), or a list of such arrays); returns self."""
        x = _as_matrix(features)
        n, dim = x.shape
        if n < self.n_clusters:
            raise ValueError(f"features has {n} frames, fewer than n_clusters={self.n_clusters}")
        if self.standardize:
            self.mean = x.mean(axis=0)
            self.scale = np.maximum(x.std(axis=0), 1e-6 * max(float(x.std()), 1e-12))
        x = self._normalize(x).astype(np.float32)
        key_init = jax.random.PRNGKey(self.seed)
        n_init = max(self.init_sample, 3 * self.n_clusters)
        if n > n_init:
            idx = np.random.default_rng(self.seed).choice(n, n_init, replace=False)
            init_rows = x[np.sort(idx)]
        else:
            init_rows = x
        n_trials = 2 + int(math.log(self.n_clusters))
        centers = _kmeans_plus_plus(jnp.asarray(init_rows), key_init, self.n_clusters, n_trials)
        tol = self.tol * float(np.mean(np.var(x, axis=0)))
        if len(init_rows) < n:  # a first pass on the subsample: fewer full-data iterations
            centers = _lloyd(*self._chunked(init_rows), centers, self.max_iter, tol,
                             self.inertia_rtol)[0]
        centers, _, dists, n_iter = _lloyd(*self._chunked(x), centers, self.max_iter, tol,
                                           self.inertia_rtol)
        self.centers = np.asarray(centers)
        self.inertia_ = float(np.sum(np.asarray(dists)[:n], dtype=np.float64))
        self.n_iter_ = int(n_iter)
        return self

    def _chunked(self, x: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """x zero-padded to whole chunks (m, chunk, dim), and row weights (1 real, 0 padding)."""
        n, dim = x.shape
        chunk = min(self.chunk_size, n)
        n_chunks = -(-n // chunk)
        padded = np.zeros((n_chunks * chunk, dim), np.float32)
        padded[:n] = x
        weights = np.zeros(n_chunks * chunk, np.float32)
        weights[:n] = 1.0
        return (jnp.asarray(padded.reshape(n_chunks, chunk, dim)),
                jnp.asarray(weights.reshape(n_chunks, chunk)))

    def _nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        x = _as_matrix(features)
        if x.shape[1] != self.dim:
            raise ValueError(f"features have dim {x.shape[1]}, the quantizer was fitted on {self.dim}")
        if len(x) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        x = self._normalize(x).astype(np.float32)
        centers = jnp.asarray(self.centers)
        labels, dists = [], []
        for start in range(0, len(x), self.chunk_size):
            part = x[start:start + self.chunk_size]
            # pad to a power of two (>= 256, <= chunk_size) so few shapes are ever compiled
            size = min(max(256, 1 << (len(part) - 1).bit_length()), self.chunk_size)
            padded = np.zeros((size, x.shape[1]), np.float32)
            padded[: len(part)] = part
            lab, dist = _predict_chunk(jnp.asarray(padded), centers)
            labels.append(np.asarray(lab)[: len(part)])
            dists.append(np.asarray(dist)[: len(part)])
        return np.concatenate(labels).astype(np.int32), np.concatenate(dists)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Id (int32) of the nearest center for every frame of ``features`` (frames, dim)."""
        return self._nearest(features)[0]

    def inertia(self, features: np.ndarray) -> float:
        """Sum of squared distances to the nearest centers (in the standardized space)."""
        return float(np.sum(self._nearest(features)[1], dtype=np.float64))

    def config(self) -> dict:
        """The constructor arguments (what ``save`` stores besides the arrays)."""
        keys = ("n_clusters", "max_iter", "tol", "seed", "chunk_size", "init_sample",
                "inertia_rtol", "standardize")
        return {k: v for k, v in asdict(self).items() if k in keys}

    def save(self, path: str | Path) -> None:
        """Write centers, standardization statistics and config to an ``.npz`` file."""
        self._check_fitted()
        meta = {"format_version": FORMAT_VERSION, "config": self.config(),
                "inertia": self.inertia_, "n_iter": self.n_iter_}
        arrays = {"centers": self.centers, "meta": np.array(json.dumps(meta))}
        if self.standardize:
            arrays.update(mean=self.mean, scale=self.scale)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> KMeansQuantizer:
        """Read a quantizer written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            if "centers" not in data or "meta" not in data:
                raise ValueError(f"{str(path)!r} is not a saved KMeansQuantizer (no centers/meta)")
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{str(path)!r}: unsupported format_version "
                                 f"{meta.get('format_version')!r}")
            q = cls(**meta["config"], inertia_=meta["inertia"], n_iter_=meta["n_iter"])
            q.centers = data["centers"].astype(np.float32)
            if q.standardize:
                q.mean, q.scale = data["mean"], data["scale"]
        if q.centers.shape[0] != q.n_clusters:
            raise ValueError(f"{str(path)!r}: {q.centers.shape[0]} centers, config says "
                             f"{q.n_clusters}")
        return q
