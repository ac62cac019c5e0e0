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
Model FLOP utilisation (MFU): the encoder's and quantizer's FLOPs per audio second (convolutions
and matmuls counted by ``torch.utils.flop_counter``, the LSTM, which it does not see, counted
from its shape) times the rate, over the float32 matmul peak of torch measured in the same run
(a 2048 x 2048 ``torch.mm``, best median of two measurements). The last line gives the MFU that
2x the naive rate would need.

"codebook-0 codes equal to naive" differs from 100% only by near-ties of the random codebooks
that float rounding (thread count, batch size) flips: compare the naive one-thread row.

``--layers`` prints instead where the naive recipe's time goes: every encoder layer's time on
one 8 s clip (torch's default threads, median of 5) and its GFLOP/s.

    python benchmarks/codec_throughput.py [--clips 16] [--repeats 3] [--device cpu] [--layers]
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
from models_throughput import median_seconds

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


def encode_flops_per_second(model) -> float:
    """FLOPs of ``model.encode`` per second of audio (1 s clip; see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    one_second = torch.zeros(1, model.channels, model.sample_rate)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        frames = model.encode(one_second)
    n_frames = sum(codes.shape[-1] for codes, _ in frames)
    return counter.get_total_flops() + lstm_flops_per_step(model.encoder) * n_frames


def lstm_flops_per_step(module: torch.nn.Module) -> int:
    """FLOPs of one time step of every ``torch.nn.LSTM`` inside ``module`` (which
    ``torch.utils.flop_counter`` does not count): 4 gates, input and recurrent matmuls."""
    flops = 0
    for lstm in module.modules():
        if isinstance(lstm, torch.nn.LSTM):
            h, n_in = lstm.hidden_size, lstm.input_size
            flops += sum(2 * 4 * h * ((n_in if k == 0 else h) + h) for k in range(lstm.num_layers))
    return flops


def torch_matmul_peak(n: int = 2048, reps: int = 10) -> float:
    """Median FLOP/s of an n x n float32 ``torch.mm`` (torch's current thread count)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: torch.mm(a, b), 1, reps)


def layer_report(model, seconds: float = 8.0, repeats: int = 5) -> None:
    """Time and GFLOP/s of every encoder layer (and the quantizer) on one clip."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, model.channels, int(seconds * model.sample_rate)) * 0.1
    rows = [(type(layer).__name__, layer) for layer in model.encoder.model]
    rows.append(("quantizer", lambda h: model.quantizer.encode(h, model.frame_rate,
                                                                model.bandwidth)))
    total = 0.0
    print(f"encoder layers on one {seconds:.0f} s clip, torch threads {torch.get_num_threads()}:")
    with torch.no_grad():
        for i, (name, layer) in enumerate(rows):
            with FlopCounterMode(display=False) as counter:
                out = layer(x)
            flops = counter.get_total_flops()
            if isinstance(layer, torch.nn.Module):
                flops += lstm_flops_per_step(layer) * x.shape[-1]
            seconds_taken = median_seconds(lambda layer=layer, x=x: layer(x), 1, repeats)
            total += seconds_taken
            print(f"  {i:2d} {name:18s} in {tuple(x.shape)!s:18s} {1e3 * seconds_taken:7.1f} ms "
                  f"{flops / seconds_taken / 1e9:7.1f} GFLOP/s")
            x = out
    print(f"  total {1e3 * total:.0f} ms = {seconds / total:.1f} audio-s/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", action="store_true",
                        help="time every encoder layer on one clip instead")
    args = parser.parse_args()

    from bark_kedro.tokenizers.codec import CodecTokenizer
    from bark_kedro.tokenizers.corpus import tokenize_codec
    from bark_kedro.tokenizers.tables import codes_matrix

    threads = torch.get_num_threads()
    clips = make_clips(args.clips)
    seconds = sum(len(c) for c in clips) / SR
    codec = CodecTokenizer.random(clips[:16], kmeans_iters=5, device=args.device)
    model = codec.model
    if args.layers:
        layer_report(model)
        return
    flops = encode_flops_per_second(model)
    print(f"{len(clips)} clips, {seconds:.1f} s of audio; device {args.device}, "
          f"{os.cpu_count()} cores, torch threads {threads}; encoder + quantizer "
          f"{flops / 1e9:.2f} GFLOP per audio second")

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
        peaks = [torch_matmul_peak()] if args.device == "cpu" else []
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
    if peaks:
        torch.set_num_threads(threads)
        peaks.append(torch_matmul_peak())
    peak = max(peaks) if peaks else None
    print(f"load average (1 min) before/after the timed rounds: {load_before:.1f} / "
          f"{os.getloadavg()[0]:.1f}")

    def mfu(rate: float) -> str:
        return f"; {rate * flops / peak:.0%} MFU" if peak else ""

    for name in modes:
        print(f"  {name:27s} {statistics.median(wall[name]):7.1f} audio-s/s (median of "
              f"{args.repeats}: {', '.join(f'{r:.1f}' for r in wall[name])}); "
              f"{statistics.median(cpu[name]):.3f} CPU-s per audio-s; codebook-0 codes equal "
              f"to naive: {100 * agree[name]:.1f}%" + mfu(statistics.median(wall[name])))
    base = statistics.median(wall["naive, one file at a time"])
    print(f"ratio ours / naive: {statistics.median(wall['ours (tokenize_codec)']) / base:.2f}x")
    if peak:
        print(f"float32 matmul peak (torch.mm 2048): {peak / 1e9:.1f} GFLOP/s; 2x naive "
              f"({2 * base:.1f} audio-s/s) would need {2 * base * flops / peak:.0%} MFU")


if __name__ == "__main__":
    main()
