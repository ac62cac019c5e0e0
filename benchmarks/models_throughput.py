"""Forward and training-step throughput of our Flax Bark models vs transformers' (PyTorch).

Same config, batch and sequence on both sides (default batch 1 x 256 tokens), random
weights and random tokens. Flax: ``jax.jit`` of a pure function of the ``nnx.split``
parameters, optax AdamW, donated buffers. PyTorch: ``transformers``' BarkCoarseModel /
BarkSemanticModel / BarkFineModel with ``torch.optim.AdamW`` (default implementation);
transformers' Bark has no loss, so the step applies the same cross-entropy outside.
Each figure is the median of --steps timed steps after --warmup untimed ones.

MFU = model FLOP/s / measured peak, where the peak is the median rate of a 2048x2048
float32 ``jnp.dot`` on this machine. Model FLOPs per token: 2N + 4LTC (forward),
6N + 12LTC (train step), N = weights of the matmuls (blocks + lm_head, no embeddings),
L layers, T sequence length, C width; the attention term counts the full T x T
scores (not halved for causality). Matmul precision: --precision highest (true float32,
default) or tf32, applied to JAX and PyTorch alike.

    python benchmarks/models_throughput.py [--stage coarse] [--presets test bark_small]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx

from bark_kedro.models import build_model, coarse_config, fine_config, semantic_config

CONFIGS = {"semantic": semantic_config, "coarse": coarse_config, "fine": fine_config}
FINE_CODEBOOK = 2  # the fine model is timed predicting one codebook


def median_seconds(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(n: int = 2048, reps: int = 20) -> float:
    """Median FLOP/s of an n x n float32 jnp.dot."""
    a, b = (jax.random.normal(jax.random.key(i), (n, n), jnp.float32) for i in (0, 1))
    dot = jax.jit(jnp.dot)
    seconds = median_seconds(lambda: dot(a, b).block_until_ready(), 3, reps)
    return 2 * n**3 / seconds


def flops_per_token(config, seq: int) -> tuple[float, float]:
    """(forward, train step) model FLOPs per token; see the module docstring."""
    c, layers = config.n_embd, config.n_layer
    n_matmul = layers * 12 * c * c + c * config.output_vocab_size
    attention = layers * seq * c
    return 2 * n_matmul + 4 * attention, 6 * n_matmul + 12 * attention


def make_batch(config, batch: int, seq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if config.__class__.__name__ == "FineGPTConfig":
        x = rng.integers(0, config.vocab.codebook_size, (batch, seq, config.n_codes_total))
        return x.astype(np.int32), x[:, :, FINE_CODEBOOK].astype(np.int32)
    x = rng.integers(0, config.input_vocab_size, (batch, seq + 1))
    y = x[:, 1:] % config.output_vocab_size
    return x[:, :-1].astype(np.int32), y.astype(np.int32)


def flax_steps(config, x: np.ndarray, y: np.ndarray):
    """(forward, train step) closures of the Flax model, each blocking until done."""
    model = build_model(config, seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    is_fine = config.__class__.__name__ == "FineGPTConfig"
    optimizer = optax.adamw(1e-4)
    state = {"params": params, "opt": optimizer.init(params)}
    x, y = jnp.asarray(x), jnp.asarray(y)

    def logits_fn(p, x):
        m = nnx.merge(graphdef, p)
        return m(FINE_CODEBOOK, x) if is_fine else m(x)

    def loss_fn(p, x, y):
        logits = logits_fn(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def forward(p, x):
        return logits_fn(p, x)

    def train_step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    train_step = jax.jit(train_step, donate_argnums=(0, 1))

    def run_forward():
        forward(state["params"], x).block_until_ready()

    def run_train():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], x, y)
        loss.block_until_ready()

    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return run_forward, run_train, n_params


def torch_steps(config, x: np.ndarray, y: np.ndarray, device: str):
    """(forward, train step) closures of transformers' Bark model at the same config."""
    import transformers

    is_fine = config.__class__.__name__ == "FineGPTConfig"
    common = dict(
        num_layers=config.n_layer,
        num_heads=config.n_head,
        hidden_size=config.n_embd,
        block_size=config.block_size,
        input_vocab_size=config.input_vocab_size,
        output_vocab_size=config.output_vocab_size,
        bias=config.bias,
        dropout=0.0,
    )
    if is_fine:
        cfg = transformers.BarkFineConfig(
            **common, n_codes_total=config.n_codes_total, n_codes_given=config.n_codes_given
        )
        model = transformers.BarkFineModel(cfg)
    elif config.stage == "semantic":
        model = transformers.BarkSemanticModel(transformers.BarkSemanticConfig(**common))
    else:
        model = transformers.BarkCoarseModel(transformers.BarkCoarseConfig(**common))
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.from_numpy(x).long().to(device)
    y = torch.from_numpy(y).long().to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def logits():
        if is_fine:
            return model(FINE_CODEBOOK, input_ids=x).logits
        return model(input_ids=x, use_cache=False).logits

    def run_forward():
        with torch.no_grad():
            logits()
        sync()

    def run_train():
        optimizer.zero_grad(set_to_none=True)
        out = logits()
        loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())
        loss.backward()
        optimizer.step()
        sync()

    n_params = sum(p.numel() for p in model.parameters())
    return run_forward, run_train, n_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=sorted(CONFIGS), default="coarse")
    parser.add_argument("--presets", nargs="+", default=["test", "bark_small"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precision", choices=["highest", "tf32"], default="highest")
    args = parser.parse_args()

    jax.config.update(
        "jax_default_matmul_precision",
        "highest" if args.precision == "highest" else "tensorfloat32",
    )
    torch.set_float32_matmul_precision("highest" if args.precision == "highest" else "high")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_peak()
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"on {device}; precision {args.precision}"
    )
    print(f"measured float32 matmul peak (jnp.dot 2048x2048): {peak / 1e12:.2f} TFLOP/s")
    print(f"stage {args.stage}, batch {args.batch} x {args.seq} tokens, median of {args.steps}")
    header = (
        f"{'preset':<11}{'impl':<14}{'params':>10}{'fwd tok/s':>12}{'fwd MFU':>9}"
        f"{'train tok/s':>13}{'train MFU':>10}{'train vs torch':>16}"
    )
    print(header)
    print("-" * len(header))
    tokens = args.batch * args.seq
    for preset in args.presets:
        config = CONFIGS[args.stage](preset)
        if config.block_size < args.seq:
            config = config.replace(block_size=args.seq)
        x, y = make_batch(config, args.batch, args.seq)
        fwd_flops, train_flops = flops_per_token(config, args.seq)
        rows = {}
        for name in ("flax (jax)", "transformers"):
            if name == "transformers":
                fwd, train, n_params = torch_steps(config, x, y, device)
            else:
                fwd, train, n_params = flax_steps(config, x, y)
            t_fwd = median_seconds(fwd, args.warmup, args.steps)
            t_train = median_seconds(train, args.warmup, args.steps)
            rows[name] = (n_params, tokens / t_fwd, tokens / t_train)
        torch_train = rows["transformers"][2]
        for name, (n_params, fwd_tps, train_tps) in rows.items():
            print(
                f"{preset:<11}{name:<14}{n_params / 1e6:>9.1f}M{fwd_tps:>12,.0f}"
                f"{fwd_tps * fwd_flops / peak:>9.1%}{train_tps:>13,.0f}"
                f"{train_tps * train_flops / peak:>10.1%}{train_tps / torch_train:>15.2f}x"
            )


if __name__ == "__main__":
    main()
