"""Our JAX k-means (KMeansQuantizer) vs scikit-learn's MiniBatchKMeans on MFCC frames.

Data: MFCC + deltas (39 dims, ~50 Hz) of eSpeak NG speech (the demo sentences spoken by a
few voices, resampled to 16 kHz), globally standardized; both methods get the same array
and the same K. Inertia (sum of squared distances to the nearest center) is computed the
same way for both, in float64 on the full data. Times are medians over --repeats fits with
different seeds, after one untimed fit that pays for JIT compilation (reported apart).

    python benchmarks/kmeans_vs_sklearn.py [--frames 50000] [--k 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

VOICES = [("en-us", 50), ("en+f2", 60), ("en-gb-x-rp+m3", 40), ("en-us+f4", 70), ("en+m7", 45)]


def mfcc_frames(n_frames: int) -> np.ndarray:
    """At least ``n_frames`` MFCC frames of eSpeak speech (first ``n_frames`` kept)."""
    from bark_kedro.audio import espeak
    from bark_kedro.audio.demo_corpus import load_demo_sentences
    from bark_kedro.audio.processing import resample
    from bark_kedro.tokenizers.features import MFCCExtractor

    extractor, sentences, feats, total = MFCCExtractor(), load_demo_sentences(), [], 0
    for voice, pitch in VOICES * 10:
        for start in range(0, len(sentences), 10):
            audio, rate = espeak.synthesize(" ".join(sentences[start:start + 10]), voice,
                                            pitch=pitch)
            feats.append(extractor(resample(audio, rate, 16_000)))
            total += len(feats[-1])
            if total >= n_frames:
                return np.concatenate(feats)[:n_frames]
    raise RuntimeError(f"could only make {total} frames")


def inertia(x: np.ndarray, centers: np.ndarray, chunk: int = 8192) -> float:
    x64, c64 = x.astype(np.float64), centers.astype(np.float64)
    c_sq, total = (c64**2).sum(1), 0.0
    for s in range(0, len(x64), chunk):
        part = x64[s:s + chunk]
        d = (part**2).sum(1)[:, None] - 2 * part @ c64.T + c_sq[None]
        total += float(np.maximum(d.min(1), 0).sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--inertia-rtols", type=float, nargs="+", default=[1e-3, 1e-2],
                        help="one row of ours per value (1e-3 is the default)")
    args = parser.parse_args()

    import jax
    from sklearn.cluster import MiniBatchKMeans

    from bark_kedro.tokenizers.kmeans import KMeansQuantizer

    t = time.perf_counter()
    x = mfcc_frames(args.frames)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    print(f"data: {x.shape[0]} x {x.shape[1]} MFCC frames of eSpeak speech "
          f"({time.perf_counter() - t:.1f} s to make), K={args.k}, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, {args.threads} threads")

    def ours(seed, rtol):
        q = KMeansQuantizer(args.k, seed=seed, standardize=False, max_iter=args.max_iter,
                            tol=args.tol, inertia_rtol=rtol)
        return q.fit(x).centers, f"{q.n_iter_} Lloyd iterations on all rows"

    def sklearn(seed):
        with threadpool_limits(args.threads):
            m = MiniBatchKMeans(args.k, random_state=seed, n_init=1).fit(x)
        return m.cluster_centers_, f"{m.n_steps_} steps of {m.batch_size}"

    t = time.perf_counter()
    ours(0, args.inertia_rtols[0])
    print(f"  ours, first fit incl. JIT compilation: {time.perf_counter() - t:.2f} s")
    fits = {f"ours, inertia_rtol={r:g}": lambda s, r=r: ours(s, r) for r in args.inertia_rtols}
    fits["sklearn MiniBatchKMeans"] = sklearn
    rows = {}
    for name, fit in fits.items():
        times, inertias = [], []
        for seed in range(args.repeats):
            t = time.perf_counter()
            centers, info = fit(seed)
            times.append(time.perf_counter() - t)
            inertias.append(inertia(x, centers))
        rows[name] = (statistics.median(times), statistics.median(inertias))
        print(f"  {name:26s} median {rows[name][0]:.3f} s  inertia {rows[name][1]:.6g}  ({info})")

    t_sk, i_sk = rows.pop("sklearn MiniBatchKMeans")
    for name, (t_ours, i_ours) in rows.items():
        print(f"{name}: {t_sk / t_ours:.2f}x the speed of MiniBatchKMeans (warm), inertia "
              f"{100 * (i_ours / i_sk - 1):+.2f}% vs MiniBatchKMeans")


if __name__ == "__main__":
    main()
