"""The offline mel codec on the demo corpus: fit time, encode/decode speed, and whether its
round trip keeps speech intelligible (pocketsphinx CER of the round trip vs the recordings).

Needs an ingested corpus (``kedro run --pipeline=ingest``). Example::

    python benchmarks/offline_codec.py --utterances 8
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np
import pandas as pd
from machine import cpu_model  # benchmarks/machine.py


def latest_utterances(root: str) -> pd.DataFrame:
    versions = sorted(glob.glob(f"{root}/utterances.parquet/*/utterances.parquet"))
    path = versions[-1] if versions else f"{root}/utterances.parquet"
    return pd.read_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", default="data/03_primary")
    parser.add_argument("--utterances", type=int, default=8, help="validation utterances heard")
    parser.add_argument("--max-fit-frames", type=int, default=16_000)
    parser.add_argument("--kmeans-iters", type=int, default=10)
    parser.add_argument("--griffin-lim-iters", type=int, default=64)
    parser.add_argument("--n-mels", type=int, default=100)
    args = parser.parse_args()

    from bark_kedro.evaluation.intelligibility import PocketSphinxRecognizer, error_rates
    from bark_kedro.tokenizers.corpus import codec_init_audio, read_clip
    from bark_kedro.tokenizers.mel_codec import MelCodec, MelCodecConfig

    print(f"{cpu_model()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    utterances = latest_utterances(args.primary)
    config = MelCodecConfig(n_mels=args.n_mels, max_fit_frames=args.max_fit_frames,
                            kmeans_iters=args.kmeans_iters,
                            griffin_lim_iters=args.griffin_lim_iters)
    clips = codec_init_audio(utterances, config.max_fit_frames, config.seed)
    start = time.perf_counter()
    codec = MelCodec.fit(clips, config)
    fit_s = time.perf_counter() - start
    print(f"fit: {fit_s:.1f} s on {codec.fit_frames} frames ({codec.describe()})")

    heldout = utterances[utterances["split"] == "validation"].sort_values("utterance_id")
    heldout = heldout.head(args.utterances)
    asr = PocketSphinxRecognizer()
    rows, audio_s, encode_s, decode_s = [], 0.0, 0.0, 0.0
    for row in heldout.itertuples(index=False):
        audio = read_clip(row.audio_24k_path, 24_000)
        t0 = time.perf_counter()
        codes = codec.encode(audio)
        t1 = time.perf_counter()
        decoded = codec.decode(codes)
        t2 = time.perf_counter()
        audio_s += len(audio) / 24_000
        encode_s, decode_s = encode_s + t1 - t0, decode_s + t2 - t1
        rows.append({"original": error_rates(row.text, asr.transcribe(audio, 24_000))["cer"],
                     "round_trip": error_rates(row.text, asr.transcribe(decoded, 24_000))["cer"]})
    cer = pd.DataFrame(rows)
    print(f"encode {audio_s / encode_s:.1f} audio-s/s, decode {audio_s / decode_s:.1f} audio-s/s "
          f"({audio_s:.1f} s of audio)")
    print(f"pocketsphinx CER over {len(cer)} validation utterances: original "
          f"{cer['original'].mean():.3f}, mel-codec round trip {cer['round_trip'].mean():.3f} "
          f"(ratio {cer['round_trip'].mean() / max(cer['original'].mean(), 1e-9):.2f})")
    print("per utterance:", np.round(cer.to_numpy(), 3).tolist())


if __name__ == "__main__":
    main()
