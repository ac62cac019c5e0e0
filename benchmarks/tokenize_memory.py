"""Peak memory of tokenization as the corpus grows: token shards written as they are
tokenized (``stream``, what the tokenize pipeline does) vs whole-corpus token frames written
at the end (``whole``, the earlier path).

A synthetic tone corpus (``--utterances`` clips around 4 s) is repeated ``--times`` over
(same audio files, new ids); the tokenizers (chars text, MFCC + k-means semantic, the
offline mel codec) are fitted once on it. Each corpus size and mode runs in a fresh process,
which samples its resident memory every 5 ms during the three tokenize stages; the figure is
the peak above the process's memory just before them (models loaded). That peak is mostly
working memory of the feature and codec code and what the allocators keep, which moves by
tens of MiB from run to run; ``--traced`` instead counts, with ``tracemalloc``, the peak of
the Python and NumPy memory the tokenization holds (tables, token arrays, audio), which is
where a whole-corpus frame shows (slower: every allocation is traced), and ``held``: the
traced memory the codec stage (the largest tokens) still holds once its table is written
(the whole-corpus frame, or the stream's reader). Example::

    python benchmarks/tokenize_memory.py --times 1 8 32
    python benchmarks/tokenize_memory.py --times 1 8 32 --traced
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py
from tone_corpus import repeated, write_tone_corpus  # benchmarks/tone_corpus.py

STAGES = ("text", "semantic", "codec")
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakSampler(threading.Thread):
    """The peak resident memory of this process while it runs."""

    def __init__(self, every_s: float = 0.005):
        super().__init__(daemon=True)
        self.every_s, self.peak, self.running = every_s, resident_bytes(), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, resident_bytes())
            time.sleep(self.every_s)

    def stop(self) -> int:
        self.running = False
        self.join()
        return max(self.peak, resident_bytes())


def _tokenizers(work: Path):
    from bark_kedro.tokenizers.codec import load_codec_file
    from bark_kedro.tokenizers.semantic import SemanticTokenizer
    from bark_kedro.tokenizers.text import text_tokenizer_from_dict

    text = text_tokenizer_from_dict(json.loads((work / "text.json").read_text()))
    return {"text": (text, {}), "semantic": (SemanticTokenizer.load(work / "semantic"), {}),
            "codec": (load_codec_file(work / "codec.pt"), {"group_seconds": 60.0})}


def child(args: argparse.Namespace) -> None:
    import pandas as pd

    from bark_kedro.tokenizers import corpus
    from bark_kedro.tokenizers.shards import ShardWriter, write_shards
    from bark_kedro.tokenizers.stream import token_stream

    work = Path(args.work)
    utterances = repeated(pd.read_parquet(work / "utterances.parquet"), args.times[0])
    tokenizers = _tokenizers(work)
    out = Path(tempfile.mkdtemp(dir=work))
    sampler = PeakSampler()
    if args.traced:
        tracemalloc.start()
    baseline = resident_bytes()
    sampler.start()
    started = time.perf_counter()
    held = 0  # traced memory the codec stage still holds once its table is written
    for stage, (tokenizer, options) in tokenizers.items():
        folder = out / f"{stage}_tokens"
        before = tracemalloc.get_traced_memory()[0] if args.traced else 0
        if args.mode == "stream":
            stream = token_stream(stage, utterances, tokenizer, progress=False, **options)
            table = ShardWriter(folder, args.rows_per_shard).write_work(stream)
        else:
            table = getattr(corpus, f"tokenize_{stage}")(utterances, tokenizer, **options,
                                                         progress=False)[0]
            write_shards(table, folder, args.rows_per_shard)
        if args.traced and stage == "codec":  # the largest tokens, caches warm by now
            held = tracemalloc.get_traced_memory()[0] - before
        del table
    wall = time.perf_counter() - started
    peak = sampler.stop()
    traced = tracemalloc.get_traced_memory()[1] if args.traced else 0
    print(json.dumps({"baseline": baseline, "peak": peak, "wall": wall, "traced": traced,
                      "held": held,
                      "audio_s": float(utterances["duration_s"].sum()),
                      "utterances": len(utterances)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=30, help="clips in the base corpus")
    parser.add_argument("--times", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rows-per-shard", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["stream", "whole"])
    parser.add_argument("--traced", action="store_true",
                        help="also the tracemalloc peak of Python and NumPy memory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from bark_kedro.tokenizers import corpus
    from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        utterances = write_tone_corpus(work / "audio", args.utterances)
        utterances.to_parquet(work / "utterances.parquet")
        text = corpus.fit_text_tokenizer(utterances, TextConfig())
        (work / "text.json").write_text(json.dumps(text.to_dict()))
        semantic, _ = corpus.fit_semantic_tokenizer(utterances, SemanticConfig(n_clusters=50),
                                                    progress=False)
        semantic.save(work / "semantic")
        corpus.build_codec(utterances, CodecConfig(weights="mel")).save(work / "codec.pt")
        base_s = float(utterances["duration_s"].sum())
        print(f"CPU: {cpu_model()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}); "
              f"base corpus {len(utterances)} tone clips, {base_s:.0f} audio-s; stages "
              f"{'+'.join(STAGES)} (chars, MFCC + 50-means, mel codec); "
              f"{args.rows_per_shard} utterances per shard")
        print(f"{'corpus':>8}{'audio-s':>9}{'mode':>8}{'peak above start (MiB)':>24}"
              f"{'audio-s/s':>11}" + (f"{'traced peak (MiB)':>19}{'codec held (MiB)':>18}"
                                      if args.traced else ""))
        for times in args.times:
            for mode in args.modes:
                result = subprocess.run(
                    [sys.executable, __file__, "--child", "--mode", mode, "--times", str(times),
                     "--work", str(work), "--rows-per-shard", str(args.rows_per_shard),
                     *(["--traced"] if args.traced else [])],
                    capture_output=True, text=True)
                if result.returncode:
                    raise SystemExit(f"x{times} {mode} failed:\n{result.stderr[-3000:]}")
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                above = (figures["peak"] - figures["baseline"]) / 2**20
                traced = (f"{figures['traced'] / 2**20:>19.1f}{figures['held'] / 2**20:>18.2f}"
                          if args.traced else "")
                print(f"{f'x{times}':>8}{figures['audio_s']:>9.0f}{mode:>8}{above:>24.1f}"
                      f"{figures['audio_s'] / figures['wall']:>11.1f}{traced}", flush=True)
        print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
