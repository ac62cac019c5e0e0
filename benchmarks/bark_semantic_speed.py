"""Bark-compatible semantic ids: HuBERT Base layer-9 features and the learned quantizer.

Full-size networks with random weights (HuBERT Base from torchaudio's HUBERT_BASE
architecture; quantizers of both published versions, 768 -> 1024 LSTM, 10 000 ids), on
--clips clips of 2-4 s of a gliding tone at 16 kHz. Prints audio seconds per wall second of
the features (one clip at a time, as the tokenizer runs them) and of each quantizer, one clip
at a time and batched (``predict_batch``). Medians over --repeats rounds after one warm-up.

    python benchmarks/bark_semantic_speed.py [--clips 4] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_model  # benchmarks/machine.py

from bark_kedro.tokenizers.bark_semantic import (
    BarkHubertQuantizer,
    BarkQuantizerNet,
    write_quantizer_file,
)
from bark_kedro.tokenizers.features import SSLExtractor, build_ssl_model

SR = 16_000




def clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(int(SR * rng.uniform(2, 4))) / SR
        f0 = 150 + 100 * np.sin(2 * np.pi * (0.7 + 0.1 * i) * t)
        out.append((0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR)).astype(np.float32))
    return out


def median_seconds(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    audio = clips(args.clips)
    seconds = sum(len(a) for a in audio) / SR
    print(f"{cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"device {args.device}; {len(audio)} clips, {seconds:.1f} s of audio")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        hubert_path = Path(tmp) / "hubert.pth"
        torch.save(build_ssl_model("HUBERT_BASE").state_dict(), hubert_path)
        extractor = SSLExtractor("hubert", layer=9, checkpoint=str(hubert_path),
                                 device=args.device)
        t = median_seconds(lambda: [extractor(a) for a in audio], args.repeats, sync)
        print(f"HuBERT Base layer 9 features: {seconds / t:8.1f} audio-s/s")
        features = [extractor(a) for a in audio]
        for version in (0, 1):
            path = write_quantizer_file(Path(tmp) / f"q{version}.pth",
                                        BarkQuantizerNet(version=version))
            quantizer = BarkHubertQuantizer(str(path), device=args.device)
            one = median_seconds(lambda q=quantizer: [q.predict(f) for f in features],
                                 args.repeats, sync)
            batched = median_seconds(lambda q=quantizer: q.predict_batch(features),
                                     args.repeats, sync)
            print(f"quantizer version {version} ({path.stat().st_size / 1e6:.0f} MB): one clip "
                  f"at a time {seconds / one:8.1f} audio-s/s, batched {seconds / batched:8.1f}")


if __name__ == "__main__":
    main()
