"""The evaluation report: a folder with ``report.json``, ``index.html``, WAVs and spectrograms.

Layout (logged as one MLflow artifact directory)::

    <report_dir>/index.html
    <report_dir>/report.json
    <report_dir>/audio/<utterance>.{original,round_trip,synthesized}.{wav,mp3}
    <report_dir>/plots/<utterance>.png

``index.html`` embeds its images and players as ``data:`` URIs (the same bytes as the MP3 and
PNG files), so it renders whole from disk and inside MLflow's artifact viewer, whose preview
frame resolves no relative link. The players embed MP3 (libsndfile's encoder; every browser
plays it) and the spectrograms are palette PNGs, so the page stays a few hundred kB; the
lossless 16-bit WAVs sit beside it for listening closely. The page opens with a summary: codec and weights, the models that
heard the audio, and one row per role (synthesized / codec round trip / original) of CER, WER,
speaker similarity and DNSMOS.

The folder is built under a temporary name beside ``report_dir`` and renamed into place, so a
crash never leaves a half-written report (an older report there stays until the new one is
complete).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bark_kedro.audio.ingest import safe_file_stem
from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.evaluation.audio_metrics import summarize
from bark_kedro.evaluation.plots import plot_spectrograms
from bark_kedro.mappings import flatten
from bark_kedro.tokenizers._checks import mono_float32
from bark_kedro.tokenizers.frames import CODEC_SAMPLE_RATE

_PER_CODEBOOK = re.compile(r"_cb\d+$")
ROLE_LABELS = {"synthesized": "synthesized", "round_trip": "codec round trip",
               "original": "original recording"}
SUMMARY_METRICS = ("cer", "wer", "speaker_similarity", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
# the per-utterance table keeps to these columns (all metrics stay in report.json)
TABLE_METRICS = ("synthesized/cer", "round_trip/cer", "original/cer", "synthesized/wer",
                 "synthesized/speaker_similarity", "synthesized/dnsmos_ovrl", "duration_ratio",
                 "mcd_db", "codec_token_accuracy")
MP3_SAMPLE_RATES = frozenset({8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100,
                              48_000})
SUMMARY_FACTS = ("codec", "codec_weights", "asr", "speaker", "mos", "hearing", "left_out")


@dataclass(frozen=True)
class UtteranceEvaluation:
    """One held-out utterance: its text, the waveforms (None if missing: ``ref_audio`` is the
    recording's codec round trip, ``original_audio`` the recording), its metrics and the ASR
    transcript of each waveform (by role: synthesized, round_trip, original)."""

    utterance_id: str
    text: str
    ref_audio: np.ndarray | None
    synth_audio: np.ndarray | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    original_audio: np.ndarray | None = None
    transcripts: Mapping[str, str] = field(default_factory=dict)


def write_report(report_dir: str | Path, utterances: Sequence[UtteranceEvaluation],
                 sample_rate: int = CODEC_SAMPLE_RATE,
                 stage_metrics: Mapping[str, Any] | None = None,
                 run_facts: Mapping[str, Any] | None = None,
                 title: str = "bark-kedro evaluation") -> Path:
    """Write the report folder (see the module docstring) and return its path.

    ``stage_metrics`` holds the teacher-forced held-out metrics per stage, e.g.
    ``{"semantic": {"loss": 2.1, "accuracy": 0.4}}``; ``run_facts`` anything that identifies the
    run (MLflow run id, model and dataset versions, codec weights, device). Audio is clipped to
    [-1, 1]; WAVs are 16-bit PCM; ``sample_rate`` must be one MP3 has (8 to 48 kHz).
    """
    if not utterances:
        raise ValueError("utterances is empty: nothing to report")
    if int(sample_rate) not in MP3_SAMPLE_RATES:
        raise ValueError(f"sample_rate must be one of MP3's {sorted(MP3_SAMPLE_RATES)}, got "
                         f"{sample_rate}")
    ids = [u.utterance_id for u in utterances]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"utterances has duplicate utterance_id values: {duplicates}")
    for u in utterances:  # check every input before writing anything
        for role, audio in (("ref_audio", u.ref_audio), ("synth_audio", u.synth_audio),
                            ("original_audio", u.original_audio)):
            if audio is not None:
                mono_float32(audio, f"{role} of utterance {u.utterance_id!r}")
    report_dir = Path(report_dir)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=report_dir.parent, prefix=f".{report_dir.name}.",
                                suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)
        entries = [_write_utterance_files(tmp, u, sample_rate)
                   for u in tqdm(utterances, desc="evaluation report", unit="utt")]
        report = {
            "title": title,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "sample_rate": int(sample_rate),
            "run": dict(run_facts or {}),
            "summary": summarize([u.metrics for u in utterances]),
            "stage_metrics": dict(stage_metrics or {}),
            "utterances": entries,
        }
        report = _json_safe(report)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n",
                                         encoding="utf-8")
        (tmp / "index.html").write_text(render_html(report, tmp), encoding="utf-8")
        for written in tmp.rglob("*"):  # temp files are private (0600); a report is for reading
            os.chmod(written, 0o755 if written.is_dir() else 0o644)
        _replace_dir(tmp, report_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report_dir


def report_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat metrics of a report dict for MLflow: the summary as is (``mcd_db_mean``, ...) and the
    stage metrics as ``<stage>/<name>``; the same names in every run, so runs compare by name.
    """
    flat = {**report["summary"], **flatten(report["stage_metrics"], sep="/")}
    return {name: float(v) for name, v in flat.items() if _is_number(v) and math.isfinite(v)}


def _write_utterance_files(root: Path, utterance: UtteranceEvaluation,
                           sample_rate: int) -> dict[str, Any]:
    stem = safe_file_stem(utterance.utterance_id)
    files: dict[str, str] = {}
    for role, audio in (("original", utterance.original_audio),
                        ("round_trip", utterance.ref_audio),
                        ("synthesized", utterance.synth_audio)):
        if audio is not None:
            clipped = np.clip(mono_float32(audio), -1.0, 1.0)
            for kind, subtype in (("wav", "PCM_16"), ("mp3", None)):
                relative = f"audio/{stem}.{role}.{kind}"
                write_audio_atomic(root / relative, clipped, sample_rate, subtype=subtype)
                files[f"{role}_{kind}"] = relative
    if utterance.ref_audio is not None:
        relative = f"plots/{stem}.png"
        plot_spectrograms(root / relative, utterance.ref_audio, utterance.synth_audio,
                          utterance.utterance_id, utterance.text, sample_rate,
                          original_audio=utterance.original_audio)
        files["spectrogram"] = relative
    return {"utterance_id": utterance.utterance_id, "anchor": f"utt-{stem}",
            "text": utterance.text, "metrics": dict(utterance.metrics),
            "transcripts": dict(utterance.transcripts), "files": files}


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, replacing an existing folder there."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"report_dir {str(target)!r} exists and is not a folder")
    if not target.exists():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.rename(target, old / target.name)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None, paths and others to str."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 78em; padding: 0 1em;
       color: #222; font-size: 15px; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; max-width: 100%; }
section { border-top: 1px solid #ddd; padding-top: 0.4em; margin-top: 1em; }
.players { display: flex; gap: 1.5em; flex-wrap: wrap; }
figure { margin: 0.3em 0; }
audio { width: 22em; max-width: 100%; }
img { max-width: 100%; height: auto; }
.transcript { color: #555; font-size: 0.9em; margin: 0.1em 0; }
details { margin: 0.5em 0; }
"""
_MIME = {".mp3": "audio/mpeg", ".png": "image/png"}


def render_html(report: Mapping[str, Any], root: str | Path) -> str:
    """The self-contained HTML page of a report dict (as written to ``report.json``); the WAVs
    and PNGs it names, under ``root``, are embedded as ``data:`` URIs."""
    root = Path(root)
    utterances = report["utterances"]
    present = {k for u in utterances for k in u["metrics"]}
    columns = [c for c in TABLE_METRICS if c in present]
    rows = [[_cell(f'<a href="#{escape(u["anchor"])}">{escape(u["utterance_id"])}</a>')]
            + [_number_cell(u["metrics"].get(c)) for c in columns] for u in utterances]
    run = report["run"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report['title'])}</title>", f"<style>{_STYLE}</style>", "</head>",
        "<body>", f"<h1>{escape(report['title'])}</h1>",
        f"<p>Created {escape(report['created_utc'])}; audio at {report['sample_rate']} Hz; "
        f"{int(report['summary'].get('n_utterances') or 0)} held-out utterances.</p>",
        _key_value_table({k: run[k] for k in SUMMARY_FACTS if k in run}),
        "<h2>What the models produce, heard</h2>", _roles_table(report["summary"]),
        "<h2>Utterances</h2>", f'<div class="wide">{_table(["utterance"] + columns, rows)}</div>',
    ]
    parts += [_utterance_section(u, root) for u in utterances]
    parts += [
        "<h2>Held-out teacher-forced metrics per stage</h2>",
        _key_value_table(flatten(report["stage_metrics"], sep="/")),
        "<details><summary>All summary metrics</summary>", _summary_table(report["summary"]),
        "</details>",
        "<details><summary>Run</summary>", _key_value_table(flatten(run, sep="/")), "</details>",
        "</body>", "</html>", "",
    ]
    return "\n".join(parts)


def _data_uri(root: Path, relative: str) -> str:
    payload = base64.b64encode((root / relative).read_bytes()).decode("ascii")
    return f"data:{_MIME[Path(relative).suffix]};base64,{payload}"


def _roles_table(summary: Mapping[str, Any]) -> str:
    """One row per role, the means of the heard metrics."""
    rows = [[_cell(escape(label))] + [_number_cell(summary.get(f"{role}/{m}_mean"))
                                      for m in SUMMARY_METRICS]
            for role, label in ROLE_LABELS.items()
            if any(f"{role}/{m}_mean" in summary for m in SUMMARY_METRICS)]
    if not rows:
        return "<p>(not heard: evaluate.hearing is disabled)</p>"
    header = ["audio", "CER", "WER", "speaker similarity", "DNSMOS SIG", "DNSMOS BAK",
              "DNSMOS OVRL"]
    return _table(header, rows)


def _utterance_section(entry: Mapping[str, Any], root: Path) -> str:
    files = entry["files"]
    players = []
    for role, label in (("original", "original recording"), ("round_trip", "codec round trip"),
                        ("synthesized", "synthesized")):
        src = files.get(f"{role}_mp3")
        player = (f'<audio controls preload="none" src="{_data_uri(root, src)}"></audio>'
                  if src else "<p>(no audio)</p>")
        heard = entry.get("transcripts", {}).get(role)
        transcript = (f'<p class="transcript">ASR: {escape(heard) or "(nothing)"}</p>'
                      if heard is not None else "")
        players.append(f"<figure><figcaption>{label}</figcaption>{player}{transcript}</figure>")
    image = (f'<img src="{_data_uri(root, files["spectrogram"])}" '
             f'alt="log-mel spectrograms of {escape(entry["utterance_id"])}">'
             if "spectrogram" in files else "")
    return "\n".join([
        f'<section id="{escape(entry["anchor"])}">',
        f"<h3>{escape(entry['utterance_id'])}</h3>",
        f"<p>{escape(entry['text'])}</p>",
        f'<div class="players">{"".join(players)}</div>',
        image, "</section>",
    ])


def _summary_table(summary: Mapping[str, Any]) -> str:
    names = list(dict.fromkeys(re.sub(r"_(mean|median)$", "", k) for k in summary
                               if k != "n_utterances"))
    rows = [[_cell(escape(n)), _number_cell(summary.get(f"{n}_mean")),
             _number_cell(summary.get(f"{n}_median"))] for n in names]
    count = f"<p>{int(summary.get('n_utterances') or 0)} utterances.</p>"
    return count + _table(["metric", "mean", "median"], rows)


def _key_value_table(values: Mapping[str, Any]) -> str:
    if not values:
        return "<p>(none)</p>"
    rows = [[_cell(escape(str(k))), _number_cell(v) if _is_number(v) else _cell(escape(str(v)))]
            for k, v in values.items()]
    return _table(["name", "value"], rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of ``<td>`` cells (from :func:`_cell` / :func:`_number_cell`) under ``header``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(html: str) -> str:
    return f"<td>{html}</td>"


def _number_cell(value: Any) -> str:
    text = f"{value:.4g}" if _is_number(value) else "&ndash;"
    return f'<td class="num">{text}</td>'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
