import numpy as np
import pytest

from bark_kedro.tokenizers.kmeans import KMeansQuantizer


def blobs(n_per=200, dim=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim)) * 10
    labels = np.repeat(np.arange(k), n_per)
    x = centers[labels] + rng.normal(size=(k * n_per, dim))
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), labels[order]


def test_fit_recovers_separated_clusters():
    x, truth = blobs()
    q = KMeansQuantizer(4, seed=1, chunk_size=128).fit(x)
    pred = q.predict(x)
    assert pred.dtype == np.int32 and pred.shape == truth.shape
    # every true cluster maps to exactly one predicted id, and vice versa
    pairs = set(zip(truth.tolist(), pred.tolist(), strict=True))
    assert len(pairs) == 4 and len({p for _, p in pairs}) == 4
    assert q.n_iter_ >= 1 and q.inertia_ == pytest.approx(q.inertia(x), rel=1e-4)


@pytest.mark.slow
def test_inertia_close_to_sklearn():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=8)
    ours = KMeansQuantizer(16, standardize=False, chunk_size=512).fit(x)
    ref = sklearn_cluster.KMeans(16, n_init=1, random_state=0).fit(x)
    assert ours.inertia_ <= ref.inertia_ * 1.03
    d = ((x[:, None, :] - ours.centers[None]) ** 2).sum(-1).min(1).sum()
    assert ours.inertia(x) == pytest.approx(d, rel=1e-3)


@pytest.mark.slow
def test_chunk_size_does_not_change_the_result():
    x, _ = blobs(n_per=150, k=6, seed=3)
    a = KMeansQuantizer(6, chunk_size=64, seed=2).fit(x)
    b = KMeansQuantizer(6, chunk_size=4096, seed=2).fit(x)
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-4)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_standardize_balances_dimensions():
    rng = np.random.default_rng(0)
    # dim 0: huge variance, no structure; dim 1: small variance, two clear groups
    x = np.stack([rng.normal(size=600) * 1000, np.repeat([-1.0, 1.0], 300)
                  + 0.05 * rng.normal(size=600)], axis=1).astype(np.float32)
    groups = np.repeat([0, 1], 300)
    pred = KMeansQuantizer(2, standardize=True).fit(x).predict(x)
    assert len(set(zip(groups.tolist(), pred.tolist(), strict=True))) == 2
    raw = KMeansQuantizer(2, standardize=False).fit(x).predict(x)
    assert len(set(zip(groups.tolist(), raw.tolist(), strict=True))) > 2  # raw distances follow dim 0


def test_save_load_round_trip(tmp_path):
    x, _ = blobs(seed=4)
    q = KMeansQuantizer(4, seed=0).fit(x)
    path = tmp_path / "kmeans.npz"
    q.save(path)
    loaded = KMeansQuantizer.load(path)
    np.testing.assert_array_equal(loaded.predict(x), q.predict(x))
    assert loaded.config() == q.config() and loaded.inertia_ == q.inertia_
    # list input (one array per utterance) and long input over several chunks
    parts = [x[:10], x[10:700], x[700:]]
    small = KMeansQuantizer.load(path)
    small.chunk_size = 256
    np.testing.assert_array_equal(small.predict(np.concatenate(parts)), q.predict(x))
    assert q.predict(np.zeros((0, x.shape[1]), np.float32)).shape == (0,)


def test_deterministic_for_a_seed():
    x, _ = blobs(k=8, n_per=50, seed=5)
    a = KMeansQuantizer(8, seed=7).fit(x)
    b = KMeansQuantizer(8, seed=7).fit(x)
    np.testing.assert_array_equal(a.centers, b.centers)


def test_bad_input_is_named(tmp_path):
    x, _ = blobs(n_per=2, k=2)
    with pytest.raises(ValueError, match="fewer than n_clusters"):
        KMeansQuantizer(10).fit(x)
    with pytest.raises(ValueError, match="2-D"):
        KMeansQuantizer(2).fit(x[0])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeansQuantizer(2).fit(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        KMeansQuantizer(2).predict(x)
    q = KMeansQuantizer(2).fit(x)
    with pytest.raises(ValueError, match="dim"):
        q.predict(x[:, :3])
    with pytest.raises(ValueError, match="n_clusters"):
        KMeansQuantizer(0)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved KMeansQuantizer"):
        KMeansQuantizer.load(tmp_path / "other.npz")
