"""How long a ``kedro run`` takes and what its held-out synthesis reaches: wall and CPU seconds
of the run and of every node (the project's ``node time`` log lines), the load of the machine
while it ran, and the report's CER / WER per role (synthesized, codec round trip, original).

On a machine other jobs load, wall time stretches but CPU seconds stay the work itself; on an
otherwise idle 2-core machine the wall time is about the CPU seconds over the cores the run
keeps busy. Examples::

    python benchmarks/kedro_run_time.py                      # the embedded default
    python benchmarks/kedro_run_time.py --env demo_speech
    python benchmarks/kedro_run_time.py --log run.log        # a finished run's log only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

NODE_TIME = re.compile(r"node time (?P<name>.+?): (?P<wall>[\d.]+) s wall, (?P<cpu>[\d.]+) s CPU")


def node_times(log: str) -> list[tuple[str, float, float]]:
    """``(node, wall s, CPU s)`` of every ``node time`` line of a run's log (rich may wrap a
    line: the log is read with its line breaks and padding removed)."""
    flat = re.sub(r"\s*\n\s*(?:\[[^\]]*\]\s+)?(?:INFO|WARNING)?\s*", " ", log)
    flat = re.sub(r"\s+", " ", flat)
    return [(m["name"], float(m["wall"]), float(m["cpu"])) for m in NODE_TIME.finditer(flat)]


def role_rates(report_path: Path) -> dict[str, dict[str, float]]:
    summary = json.loads(report_path.read_text())["summary"]
    return {role: {m: summary.get(f"{role}/{m}_mean") for m in ("cer", "wer")}
            for role in ("synthesized", "round_trip", "original")}


def wav_facts(path: Path) -> str:
    """Duration, share of 20 ms frames within 40 dB of the loudest, spread of the frame levels
    (speech varies by tens of dB, a tone or hiss hardly) and pocketsphinx's transcript."""
    import numpy as np

    from bark_kedro.audio.io import load_audio
    from bark_kedro.evaluation.intelligibility import PocketSphinxRecognizer

    audio, rate = load_audio(path)
    mono = audio.mean(axis=0)
    hop = rate // 50
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    heard = PocketSphinxRecognizer().transcribe(mono, rate)
    return (f"{len(mono) / rate:.2f} s; {np.mean(level > level.max() - 40):.0%} of 20 ms frames "
            f"within 40 dB of the loudest; frame level spread {level.std():.1f} dB; "
            f"pocketsphinx heard {heard!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="kedro environment (default: base)")
    parser.add_argument("--log", default=None, help="read this log instead of running")
    parser.add_argument("--report", default="data/08_reporting/evaluation/report.json")
    parser.add_argument("--wav", default="data/07_model_output/synthesized.wav",
                        help="the synthesize pipeline's WAV (its newest version)")
    args = parser.parse_args()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores visible")
    if args.log:
        log = Path(args.log).read_text(errors="replace")
    else:
        command = ["kedro", "run"] + ([f"--env={args.env}"] if args.env else [])
        print("command:", " ".join(command), flush=True)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, errors="replace")
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = done.stdout + done.stderr
        Path("data/08_reporting").mkdir(parents=True, exist_ok=True)
        Path("data/08_reporting/kedro_run_time.log").write_text(log)
        print(f"exit {done.returncode}; wall {wall:.0f} s; CPU {usage.ru_utime:.0f} s user + "
              f"{usage.ru_stime:.0f} s system; peak memory {usage.ru_maxrss / 2**20:.2f} GB; "
              f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        if done.returncode:
            print(log[-3000:], file=sys.stderr)
            sys.exit(done.returncode)
    print(f"{'node':<44} {'wall s':>8} {'CPU s':>8}")
    for name, wall_s, cpu_s in node_times(log):
        print(f"{name:<44} {wall_s:8.1f} {cpu_s:8.1f}")
    report = Path(args.report)
    if report.is_file():
        print(f"{'held-out audio':<20} {'CER':>6} {'WER':>6}")
        for role, rates in role_rates(report).items():
            cells = " ".join(f"{v:6.3f}" if v is not None else "     -" for v in rates.values())
            print(f"{role:<20} {cells}")
    versions = sorted(Path(args.wav).glob("*/*.wav")) or [Path(args.wav)]
    if versions[-1].is_file():
        print(f"{versions[-1]}: {wav_facts(versions[-1])}")


if __name__ == "__main__":
    main()
