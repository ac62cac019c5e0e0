"""EnCodec tokenization throughput (audio-seconds per wall-second): batched vs one clip at a time.

Clips: --clips eSpeak NG utterances (demo sentences, several voices) cut to 2-6 s at 24 kHz
(or, with --synthetic, gliding tones of 2-6 s).
The codec has random weights with k-means-initialised codebooks (initialisation not timed);
throughput does not depend on the weights. Both modes run with the same torch thread count;
medians over --repeats runs are printed, then the batched / one-at-a-time ratio.

    python benchmarks/codec_throughput.py [--clips 32] [--batch-sizes 4 8] [--device cpu]

"default limits" is the tokenizer's own batching (at most 16 clips and, on CPU, 8 s of padded
audio per batch); the batch_size rows lift the seconds cap.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

VOICES = [("en-us", 50), ("en+f2", 60), ("en-gb-x-rp+m3", 40), ("en-us+f4", 70)]


def make_clips(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` clips of 2-6 s of eSpeak speech at 24 kHz."""
    from bark_kedro.audio import espeak
    from bark_kedro.audio.demo_corpus import load_demo_sentences
    from bark_kedro.audio.processing import resample

    rng = np.random.default_rng(seed)
    sentences, clips = load_demo_sentences(), []
    for i in range(n):
        voice, pitch = VOICES[i % len(VOICES)]
        text = " ".join(sentences[(3 * i + k) % len(sentences)] for k in range(3))
        audio, rate = espeak.synthesize(text, voice, pitch=pitch)
        audio = resample(audio, rate, 24_000)
        clips.append(audio[: int(rng.uniform(2.0, 6.0) * 24_000)])
    return clips


def synthetic_clips(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` clips of 2-6 s of gliding tones with noise at 24 kHz (no eSpeak needed)."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        t = np.arange(int(rng.uniform(2.0, 6.0) * 24_000)) / 24_000
        f0 = rng.uniform(100, 250) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 24_000) + 0.02 * rng.normal(size=t.size)
        clips.append(wave.astype(np.float32))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true", help="tones instead of eSpeak speech")
    args = parser.parse_args()

    from bark_kedro.tokenizers.codec import CodecTokenizer

    torch.set_num_threads(args.threads)
    clips = synthetic_clips(args.clips) if args.synthetic else make_clips(args.clips)
    seconds = sum(len(c) for c in clips) / 24_000
    t = time.perf_counter()
    codec = CodecTokenizer.random(clips[:8], kmeans_iters=5, device=args.device)
    print(f"{len(clips)} clips, {seconds:.1f} s of audio; random codec initialised in "
          f"{time.perf_counter() - t:.1f} s; device {args.device}, torch threads "
          f"{torch.get_num_threads()}")

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_at_a_time():
        return [codec.encode(c) for c in clips]

    runs = {"one at a time": one_at_a_time,
            "batched, default limits": lambda: codec.encode_batch(clips)}
    for b in args.batch_sizes:
        batched = codec.with_options(batch_size=b, max_batch_seconds=1e9)
        runs[f"batched, batch_size={b}"] = lambda batched=batched: batched.encode_batch(clips)

    reference = one_at_a_time()  # warm-up, and a check that both modes agree
    results = {}
    for name, run in runs.items():
        codes = run()
        agree = np.mean([np.mean(a[0] == b[0]) for a, b in zip(codes, reference, strict=True)])
        rates = []
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            run()
            sync()
            rates.append(seconds / (time.perf_counter() - t))
        results[name] = statistics.median(rates)
        print(f"  {name:25s} {results[name]:7.1f} audio-s/s (median of {args.repeats}); "
              f"codebook-0 codes equal to one-at-a-time: {100 * agree:.1f}%")
    single = results.pop("one at a time")
    best = max(results, key=results.get)
    print(f"ratio: best batched ({best}) / one at a time = {results[best] / single:.2f}x")


if __name__ == "__main__":
    main()
