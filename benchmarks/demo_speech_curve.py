"""The CER curve of ``conf/demo_speech`` over training steps: held-out sentences synthesized from
text alone, heard by the offline ASR, against the same sentences' codec round trip.

Ingests and tokenizes once, then for every step count trains the three stages for that many
steps (each a whole schedule: warm-up and decay over those steps) and evaluates; prints one row
per step count (CER / WER synthesized, round trip, original; the ratio to the 1.5x target;
wall and CPU seconds) and the whole wall time. Example::

    python benchmarks/demo_speech_curve.py --steps 250,500,1000
    python benchmarks/demo_speech_curve.py --steps 1000 --fine-ratio 0.5   # one full run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

REPORT = Path("data/08_reporting/evaluation/report.json")
TARGET = 1.5  # CER(synthesized) <= 1.5 x CER(codec round trip)


def kedro(env: str, pipelines: str, params: str | None = None) -> tuple[float, float]:
    """Run ``kedro run``; return its wall and CPU seconds (exits on failure)."""
    command = ["kedro", "run", f"--env={env}", f"--pipelines={pipelines}"]
    if params:
        command.append(f"--params={params}")
    print("$", " ".join(command), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        print((done.stdout + done.stderr)[-3000:], file=sys.stderr)
        sys.exit(done.returncode)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def heard() -> dict[str, float | None]:
    summary = json.loads(REPORT.read_text())["summary"]
    return {f"{role}/{m}": summary.get(f"{role}/{m}_mean")
            for role in ("synthesized", "round_trip", "original") for m in ("cer", "wer")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="demo_speech")
    parser.add_argument("--steps", default="250,500,1000", help="semantic step counts")
    parser.add_argument("--coarse-ratio", type=float, default=1.0,
                        help="coarse steps per semantic step")
    parser.add_argument("--fine-ratio", type=float, default=0.5,
                        help="fine steps per semantic step")
    parser.add_argument("--skip-data", action="store_true", help="reuse ingest + tokenize")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores visible; load average "
          f"{os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    if not args.skip_data:
        wall, cpu = kedro(args.env, "ingest,tokenize")
        print(f"ingest + tokenize: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        coarse = max(1, round(steps * args.coarse_ratio))
        fine = max(1, round(steps * args.fine_ratio))
        params = ",".join([f"train_semantic.train.steps={steps}",
                           f"train_coarse.train.steps={coarse}",
                           f"train_fine.train.steps={fine}"])
        wall, cpu = kedro(args.env, "train,evaluate", params)
        rates = heard()
        rows.append((f"{steps}/{coarse}/{fine}", rates, wall, cpu))
        synth, trip = rates["synthesized/cer"], rates["round_trip/cer"]
        ratio = synth / trip if synth is not None and trip else float("nan")
        print(f"steps {steps}/{coarse}/{fine}: CER synthesized {synth:.3f}, round trip "
              f"{trip:.3f} (ratio {ratio:.2f}, target <= {TARGET}); {wall:.0f} s wall, "
              f"{cpu:.0f} s CPU", flush=True)
    print("\n| steps (semantic/coarse/fine) | CER synthesized | CER round trip | CER original "
          "| WER synthesized | ratio | train+evaluate wall s | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r, wall, cpu in rows:
        ratio = r["synthesized/cer"] / r["round_trip/cer"] if r["round_trip/cer"] else float("nan")
        print(f"| {label} | {r['synthesized/cer']:.3f} | {r['round_trip/cer']:.3f} "
              f"| {r['original/cer']:.3f} | {r['synthesized/wer']:.3f} | {ratio:.2f} | {wall:.0f} "
              f"| {cpu:.0f} |")
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s wall")


if __name__ == "__main__":
    main()
