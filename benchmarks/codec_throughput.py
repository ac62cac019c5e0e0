"""EnCodec tokenization throughput (audio-seconds per wall-second): ours vs a naive recipe.

Both read the same WAV files (24 kHz mono float32, as ingest writes them) and encode them with
the same EnCodec model (random weights, k-means-initialised codebooks; initialisation not
timed; throughput does not depend on the weights):

- naive: EnCodec's README recipe, one file at a time: ``soundfile.read`` -> ``convert_audio``
  -> ``model.encode(wav[None])`` under ``torch.no_grad``, with torch's default thread count
  (and, to show what thread synchronisation costs on a busy machine, with one thread);
- ours: :func:`bark_kedro.tokenizers.corpus.tokenize_codec` on the utterances table (reads the
  files, encodes through :class:`CodecTokenizer`, builds the ``codec_tokens`` table), with its
  defaults (on CPU: one worker thread per core, LSTM and quantizer batched, see
  ``bark_kedro/tokenizers/codec_encoder.py``), and with ``cpu_workers=0`` (padded batches
  through the whole model, the GPU path).

Modes run interleaved, --repeats rounds; medians are printed with the CPU seconds each mode
used per audio second, the load average (other processes share the cores) and the ratio.
"codebook-0 codes equal to naive" differs from 100% only by near-ties of the random codebooks
that float rounding (thread count, batch size) flips: compare the naive one-thread row.

    python benchmarks/codec_throughput.py [--clips 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

VOICES = [("en-us", 50), ("en+f2", 60), ("en-gb-x-rp+m3", 40), ("en-us+f4", 70)]
SR = 24_000


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
        audio = resample(audio, rate, SR)
        clips.append(audio[: int(rng.uniform(2.0, 6.0) * SR)].astype(np.float32))
    return clips


def write_table(clips: list[np.ndarray], folder: Path) -> pd.DataFrame:
    """WAV files of ``clips`` and an ``utterances``-like table pointing at them."""
    rows = []
    for i, clip in enumerate(clips):
        path = folder / f"utt{i:03d}.wav"
        sf.write(path, clip, SR, subtype="FLOAT")
        rows.append({"utterance_id": f"utt{i:03d}", "speaker": "s", "split": "train",
                     "text": "-", "duration_s": len(clip) / SR, "audio_16k_path": "-",
                     "audio_24k_path": str(path)})
    return pd.DataFrame(rows)


def naive(model, paths: list[str], device: str) -> list[np.ndarray]:
    """One file at a time, the EnCodec README way."""
    from encodec.utils import convert_audio

    out = []
    for path in paths:
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
        wav = convert_audio(torch.from_numpy(wav.T), sr, model.sample_rate, model.channels)
        with torch.no_grad():
            frames = model.encode(wav[None].to(device))
        out.append(torch.cat([codes for codes, _ in frames], dim=-1)[0].cpu().numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from bark_kedro.tokenizers.codec import CodecTokenizer
    from bark_kedro.tokenizers.corpus import tokenize_codec
    from bark_kedro.tokenizers.tables import codes_matrix

    threads = torch.get_num_threads()
    clips = make_clips(args.clips)
    seconds = sum(len(c) for c in clips) / SR
    codec = CodecTokenizer.random(clips[:16], kmeans_iters=5, device=args.device)
    model = codec.model
    print(f"{len(clips)} clips, {seconds:.1f} s of audio; device {args.device}, "
          f"{os.cpu_count()} cores, torch threads {threads}")

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory() as tmp:
        table = write_table(clips, Path(tmp))
        paths = table["audio_24k_path"].tolist()

        def ours(**options):
            tokens = tokenize_codec(table, codec.with_options(**options), progress=False)[0]
            return [codes_matrix(row) for _, row in tokens.iterrows()]

        def naive_one_thread():
            torch.set_num_threads(1)
            return naive(model, paths, args.device)

        modes = {
            "naive, one file at a time": lambda: naive(model, paths, args.device),
            "naive, torch threads=1": naive_one_thread,
            "ours (tokenize_codec)": ours,
            "ours, cpu_workers=0": lambda: ours(cpu_workers=0),
        }
        if args.device != "cpu":
            modes.pop("ours, cpu_workers=0")
            modes.pop("naive, torch threads=1")
        reference = naive(model, paths, args.device)  # warm-up, and the codes to compare with
        agree = {}
        for name, run in modes.items():
            codes = run()
            torch.set_num_threads(threads)
            agree[name] = np.mean([np.mean(a[0] == b[0]) for a, b in zip(codes, reference,
                                                                          strict=True)])
        wall = {name: [] for name in modes}
        cpu = {name: [] for name in modes}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for name, run in modes.items():
                torch.set_num_threads(threads)
                sync()
                t, c = time.perf_counter(), time.process_time()
                run()
                sync()
                wall[name].append(seconds / (time.perf_counter() - t))
                cpu[name].append((time.process_time() - c) / seconds)
    print(f"load average (1 min) before/after the timed rounds: {load_before:.1f} / "
          f"{os.getloadavg()[0]:.1f}")
    for name in modes:
        print(f"  {name:27s} {statistics.median(wall[name]):7.1f} audio-s/s (median of "
              f"{args.repeats}: {', '.join(f'{r:.1f}' for r in wall[name])}); "
              f"{statistics.median(cpu[name]):.3f} CPU-s per audio-s; codebook-0 codes equal "
              f"to naive: {100 * agree[name]:.1f}%")
    base = statistics.median(wall["naive, one file at a time"])
    print(f"ratio ours / naive: {statistics.median(wall['ours (tokenize_codec)']) / base:.2f}x")


if __name__ == "__main__":
    main()
