"""Tokenization of the demo corpus on the ``local`` and ``ray`` engines, in audio-s/s.

Reads an ingested corpus (``kedro run --pipelines=ingest``), or with ``--tones N`` writes a
synthetic one of N tone clips. The tokenizers are fitted once (chars text, MFCC + k-means
semantic, the offline mel codec); each stage then tokenizes the corpus as the tokenize
pipeline does (a ``TokenStream`` written shard by shard) in this process (``local``) and on a
local Ray of ``--actors`` actors (``ray``); the Ray figures include starting the actor pool
and moving the tables, not ``ray.init`` (printed apart). Example::

    python benchmarks/tokenize_engines.py --actors 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py
from offline_codec import latest_utterances  # benchmarks/offline_codec.py
from tone_corpus import write_tone_corpus  # benchmarks/tone_corpus.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", default="data/03_primary")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-rows", type=int, default=8)
    parser.add_argument("--utterances", type=int, default=None, help="the first N only")
    parser.add_argument("--n-clusters", type=int, default=50)
    parser.add_argument("--tones", type=int, default=None,
                        help="a synthetic corpus of N tone clips instead of the ingested one")
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> None:
    import ray

    from bark_kedro.tokenizers import corpus
    from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig
    from bark_kedro.tokenizers.ray_engine import RayEngineConfig, connect
    from bark_kedro.tokenizers.shards import ShardWriter
    from bark_kedro.tokenizers.stream import stage_results, token_stream

    def tokenize(stage, engine, tokenizer, options) -> dict[str, float]:
        stream = token_stream(stage, utterances, tokenizer, engine, config, False, **options)
        folder = scratch / f"{stage}-{engine}"
        return stage_results(ShardWriter(folder, args.rows_per_shard).write_work(stream))[1]

    utterances = (write_tone_corpus(scratch / "tones", args.tones) if args.tones
                  else latest_utterances(args.primary))
    if args.utterances:
        utterances = utterances.iloc[: args.utterances].reset_index(drop=True)
    audio_s = float(utterances["duration_s"].sum())
    text = corpus.fit_text_tokenizer(utterances, TextConfig())
    semantic, _ = corpus.fit_semantic_tokenizer(
        utterances, SemanticConfig(n_clusters=args.n_clusters), progress=False)
    codec = corpus.build_codec(utterances, CodecConfig(weights="mel"))
    stages = {"text": (text, {}), "semantic": (semantic, {}),
              "codec": (codec, {"group_seconds": 600.0})}
    config = RayEngineConfig(actors=args.actors, local_cpus=args.actors,
                             batch_rows=args.batch_rows)
    started = time.perf_counter()
    connect(config)
    ray_start = time.perf_counter() - started

    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}); "
          f"{len(utterances)} utterances, {audio_s:.1f} audio-s; ray {ray.__version__}, "
          f"{args.actors} actors, {args.batch_rows} utterances per batch, "
          f"{args.rows_per_shard} per shard; "
          f"ray.init {ray_start:.1f} s")
    print(f"{'stage':<10}{'local audio-s/s':>17}{'ray audio-s/s':>15}{'ray/local':>11}")
    totals = {"local": 0.0, "ray": 0.0}
    for stage, (tokenizer, options) in stages.items():
        local = tokenize(stage, "local", tokenizer, options)
        on_ray = tokenize(stage, "ray", tokenizer, options)
        totals["local"] += local["wall_seconds"]
        totals["ray"] += on_ray["wall_seconds"]
        print(f"{stage:<10}{local['audio_s_per_s']:>17.1f}{on_ray['audio_s_per_s']:>15.1f}"
              f"{on_ray['audio_s_per_s'] / local['audio_s_per_s']:>10.2f}x")
    print(f"{'all three':<10}{audio_s / totals['local']:>17.1f}{audio_s / totals['ray']:>15.1f}"
          f"{totals['local'] / totals['ray']:>10.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
