"""Reliability figures: hostile inputs tried, rows lost, crashes and faults survived.

Inputs (seconds): every row of the hostile corpus (``tests/reliability/hostile_corpus.py``)
through ingestion from a CSV and a JSONL manifest, files posing as manifests, and bad values
that must fail early with a named error (codec weight files that are no state dict,
``n_clusters`` above the frames). A row is *lost* when it ends in neither ``utterances`` nor
the rejects, *misjudged* when its reason code is not the expected one; a *crash* is an
exception that is not the named error expected.

Faults (minutes, skipped with --inputs-only): a full disk (a 256 KiB tmpfs; needs root, else
reported as not tried) during ingest and a Parquet save; ``tokenize`` SIGKILLed at random
points (--kills) then run again; ``train_semantic`` killed and run again; two ingests at once.
A fault is *survived* when nothing half-written is visible or read afterwards, nothing is
mixed, and the next run completes.

    python benchmarks/reliability.py [--kills 3] [--inputs-only]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package




def hostile_inputs(root: Path) -> dict[str, int]:
    """Counts over every hostile input."""
    from bark_kedro.audio.ingest import IngestConfig, ingest_utterances
    from bark_kedro.audio.sources import read_manifest
    from bark_kedro.tokenizers.codec import CodecTokenizer
    from tests.reliability.hostile_corpus import (
        BAD_MANIFEST_ROWS,
        make_hostile_corpus,
        make_hostile_manifests,
    )

    counts = {"inputs": 0, "rows_lost": 0, "misjudged": 0, "crashes": 0}
    corpus = make_hostile_corpus(root / "hostile")
    try:
        for kind, manifest in (("csv", corpus.csv_manifest), ("jsonl", corpus.jsonl_manifest)):
            rows = len(corpus.expected) + BAD_MANIFEST_ROWS[kind]
            counts["inputs"] += rows
            try:
                sources = read_manifest(manifest)
                kept, rejected = ingest_utterances(sources, root / "out", IngestConfig(),
                                                   progress=False)
            except Exception as err:  # noqa: BLE001 - counted, then shown
                print(f"  crash on {manifest.name}: {type(err).__name__}: {str(err)[:200]}")
                counts["crashes"] += 1
                counts["rows_lost"] += rows
                continue
            counts["rows_lost"] += len(sources) - len(kept) - len(rejected)
            codes = {r.utterance_id: r.reason.split(":")[0] for r in rejected.itertuples()}
            for utt_id, want in corpus.expected.items():
                got = None if utt_id in set(kept.utterance_id) else codes.get(utt_id, "lost")
                counts["misjudged"] += got != want
    finally:
        corpus.close()
    for name, path in make_hostile_manifests(root / "manifests").items():
        counts["inputs"] += 1
        try:
            read_manifest(path)
            counts["crashes"] += 1  # accepted a file that is no manifest
        except ValueError as err:
            counts["crashes"] += name not in str(err)
        except Exception:  # noqa: BLE001
            counts["crashes"] += 1
    weights = {"passwd": Path("/etc/passwd"), "text": root / "w.th", "empty": root / "e.th"}
    weights["text"].write_text("not a checkpoint")
    weights["empty"].write_bytes(b"")
    for path in weights.values():
        counts["inputs"] += 1
        try:
            CodecTokenizer.from_checkpoint(path)
            counts["crashes"] += 1
        except ValueError as err:
            counts["crashes"] += "not an EnCodec state dict" not in str(err)
        except Exception:  # noqa: BLE001
            counts["crashes"] += 1
    return counts


def full_disk(root: Path) -> tuple[int, int]:
    """(tried, survived) for a full disk during ingest and during a Parquet save."""
    import errno

    import numpy as np
    import pandas as pd
    from kedro.io import DatasetError, Version

    from bark_kedro.audio.ingest import IngestConfig, ingest_utterances
    from bark_kedro.audio.sources import read_manifest
    from bark_kedro.datasets.atomic import ParquetDataset
    from tests.audio.bad_corpus import make_bad_input_corpus
    from tests.reliability.faults import fill, tiny_filesystem

    manifest, _ = make_bad_input_corpus(root / "corpus")
    try:
        with tiny_filesystem(root / "tiny") as mount:
            fill(mount)
            survived = 0
            try:
                ingest_utterances(read_manifest(manifest), mount / "out", IngestConfig(),
                                  progress=False)
            except OSError as err:
                survived += err.errno == errno.ENOSPC and "mounted at" in str(err)
            try:
                ParquetDataset(filepath=str(mount / "t.parquet"), version=Version(None, "v1")
                               ).save(pd.DataFrame({"x": [np.arange(1000)] * 100}))
            except DatasetError as err:
                survived += "no space left on device" in str(err)
            leftovers = [p for p in mount.rglob("*") if p.is_file() and p.name != "filler"]
            return 2, survived if not leftovers else 0
    except OSError as err:
        print(f"  full disk not tried: {err}")
        return 0, 0


def killed_and_concurrent_runs(root: Path, kills: int) -> tuple[int, int]:
    """(tried, survived) for tokenize kills, a training kill and two ingests at once."""
    import pandas as pd

    from tests.audio.bad_corpus import make_bad_input_corpus
    from tests.reliability.faults import concurrent_ingests, tokenize_kills, training_kill

    tried = survived = 0
    started = time.perf_counter()
    result = tokenize_kills(root / "kills", kills=kills)
    ok_end = (result["next_run_ok"] and result["whole_at_end"] and result["new_commit"]
              and not result["temporaries_left"] and not result["left_running"])
    tried += result["killed"]
    survived += min(result["whole_after_kill"], result["unchanged_after_kill"]) if ok_end else 0
    print(f"  tokenize (a whole run {result['full_run_s']:.0f} s): "
          f"{result['killed']} of {kills} runs killed mid-run, "
          f"{result['marked_killed']} marked KILLED in MLflow, next run ok: "
          f"{result['next_run_ok']} ({time.perf_counter() - started:.0f} s)")
    started = time.perf_counter()
    training = training_kill(result["project"], root / "kills")
    tried += 1
    survived += (training["next_run_ok"] and training["every_version_loads"]
                 and not training["temporaries_left"])
    print(f"  train_semantic: killed {training['killed']}, next run ok: "
          f"{training['next_run_ok']} ({time.perf_counter() - started:.0f} s)")
    corpora = []
    for name, count in (("first", 4), ("second", 3)):
        manifest, expected = make_bad_input_corpus(root / name)
        frame = pd.read_csv(manifest)
        keep = [uid for uid, code in expected.items() if code is None][:count]
        frame = frame[frame["id"].isin(keep)].assign(id=lambda f, n=name: f"{n}_" + f["id"])
        frame.to_csv(manifest, index=False)
        corpora.append((manifest, set(frame["id"])))
    concurrent = concurrent_ingests(root / "concurrent", corpora)
    tried += 1
    survived += concurrent["exit_codes"] == [0, 0] and all(concurrent["own_corpus"])
    print(f"  two ingests at once: exit codes {concurrent['exit_codes']}, each version holds "
          f"its own corpus: {concurrent['own_corpus']}")
    return tried, survived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3, help="tokenize runs to kill")
    parser.add_argument("--inputs-only", action="store_true", help="skip the kedro runs")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        counts = hostile_inputs(root)
        print(f"hostile inputs tried: {counts['inputs']}  rows lost: {counts['rows_lost']}  "
              f"misjudged: {counts['misjudged']}  crashes: {counts['crashes']}  "
              f"({time.perf_counter() - started:.1f} s)")
        try:
            tried, survived = full_disk(root)
        except Exception as err:  # noqa: BLE001 - e.g. code without atomic datasets
            print(f"  full disk: crash {type(err).__name__}: {err}")
            tried, survived = 2, 0
        if not args.inputs_only:
            more_tried, more_survived = killed_and_concurrent_runs(root, args.kills)
            tried, survived = tried + more_tried, survived + more_survived
        print(f"faults tried: {tried}  survived: {survived}")


if __name__ == "__main__":
    main()
