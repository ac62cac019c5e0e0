"""The report folder: JSON, HTML links, atomic replacement."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bark_kedro.audio.io import load_audio
from bark_kedro.evaluation import report as report_module
from bark_kedro.evaluation.audio_metrics import summarize
from bark_kedro.evaluation.report import UtteranceEvaluation, report_metrics, write_report

SR = 24_000


class LinkCollector(HTMLParser):
    """Every src/href and id in a page."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href"):
                self.links.append(value)
            if name == "id":
                self.ids.add(value)


def tone(seconds, freq, amplitude=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def utterances():
    return [
        UtteranceEvaluation("spk1_0001", "Hello there.", tone(0.5, 220), tone(0.4, 230),
                            {"mcd_db": 4.0, "duration_ratio": 0.8, "codec_token_accuracy_cb0": 0.5,
                             "synthesized/cer": 0.5, "round_trip/cer": 0.25,
                             "original/cer": 0.125, "original/dnsmos_ovrl": 3.0},
                            original_audio=tone(0.5, 200),
                            transcripts={"synthesized": "hello", "original": "hello there"}),
        UtteranceEvaluation("spk 2/<odd> & id", "Text with <b>markup</b> & more",
                            tone(0.3, 440), tone(0.35, 450, 1.5),  # clipped when written
                            {"mcd_db": 6.0, "duration_ratio": 1.2,
                             "codec_token_accuracy_cb0": 0.25}),
        UtteranceEvaluation("spk1_0003", "Synthesis failed.", tone(0.3, 330), None,
                            {"mcd_db": float("nan")}),
    ]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return write_report(tmp_path_factory.mktemp("report") / "evaluation", utterances(),
                        stage_metrics={"semantic": {"loss": 2.5, "accuracy": np.float32(0.25)}},
                        run_facts={"mlflow_run_id": "abc123", "codec_weights": "random"})


def test_report_json_holds_metrics_summary_stages_and_run(report_dir):
    utts = utterances()

    def no_nan(constant):
        raise AssertionError(f"report.json holds {constant}")

    report = json.loads((report_dir / "report.json").read_text(), parse_constant=no_nan)
    assert [u["utterance_id"] for u in report["utterances"]] == [u.utterance_id for u in utts]
    assert report["utterances"][0]["metrics"] == utts[0].metrics
    assert report["utterances"][2]["metrics"] == {"mcd_db": None}
    assert report["summary"] == summarize([u.metrics for u in utts])
    assert report["summary"]["mcd_db_mean"] == 5.0
    assert report["stage_metrics"] == {"semantic": {"loss": 2.5, "accuracy": 0.25}}
    assert report["run"] == {"mlflow_run_id": "abc123", "codec_weights": "random"}
    assert report["sample_rate"] == SR
    metrics = report_metrics(report)
    assert metrics["mcd_db_median"] == 5.0 and metrics["semantic/accuracy"] == 0.25
    assert all(isinstance(v, float) for v in metrics.values())


def resolve(link: str, page_dir: Path) -> bytes:
    """The bytes a link points at, as a browser would fetch them from ``page_dir``."""
    if link.startswith("data:"):
        header, payload = link.split(",", 1)
        assert header.endswith(";base64")
        return base64.b64decode(payload)
    assert "://" not in link and not link.startswith("/")
    return (page_dir / link).read_bytes()


def test_html_embeds_every_mp3_and_png_so_they_resolve_anywhere(report_dir, tmp_path):
    page = (report_dir / "index.html").read_text()
    parser = LinkCollector()
    parser.feed(page)
    parser.close()
    assert {"html", "table", "audio", "img"} <= parser.tags
    files = {p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*")
             if p.suffix in (".mp3", ".png")}
    # one original, three round trips, two synthesized, three spectrograms
    assert len(files) == 1 + 3 + 2 + 3
    media = [link for link in parser.links if not link.startswith("#")]
    on_disk = sorted(resolve(link, report_dir) for link in media)
    assert on_disk == sorted((report_dir / f).read_bytes() for f in files)
    # MLflow's artifact viewer shows the page in a frame where no sibling file resolves: the
    # page alone, elsewhere, must still find every image and player
    alone = tmp_path / "viewer"
    alone.mkdir()
    shutil.copy(report_dir / "index.html", alone / "index.html")
    assert sorted(resolve(link, alone) for link in media) == on_disk
    for link in media:
        kind = link.split(";", 1)[0]
        data = resolve(link, alone)
        assert (kind == "data:image/png" and data[:4] == b"\x89PNG") or (
            kind == "data:audio/mpeg" and (data[:3] == b"ID3" or data[0] == 0xFF))
    anchors = {link[1:] for link in parser.links if link.startswith("#")}
    assert anchors and anchors <= parser.ids
    assert "<b>markup</b>" not in page and "&lt;b&gt;markup&lt;/b&gt;" in page


def test_embedded_media_are_compressed_and_play_back_the_audio(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    files = report["utterances"][0]["files"]
    wav, mp3 = report_dir / files["original_wav"], report_dir / files["original_mp3"]
    assert mp3.stat().st_size * 4 < wav.stat().st_size
    decoded, rate = load_audio(mp3)
    assert rate == SR and abs(decoded.shape[1] - int(0.5 * SR)) < SR // 20
    spectrum = np.abs(np.fft.rfft(decoded[0]))  # still the 200 Hz tone
    assert abs(np.argmax(spectrum) * SR / decoded.shape[1] - 200) < 5
    page_size = (report_dir / "index.html").stat().st_size
    wav_total = sum(p.stat().st_size for p in report_dir.rglob("*.wav"))
    assert page_size < wav_total


def test_summary_on_top_names_codec_models_and_the_three_rows(report_dir):
    page = (report_dir / "index.html").read_text()
    head = page[: page.index("<h2>Utterances</h2>")]
    assert "codec_weights" in head and "random" in head
    for label in ("synthesized", "codec round trip", "original recording"):
        assert f"<td>{label}</td>" in head
    assert "CER" in head and "DNSMOS OVRL" in head and "speaker similarity" in head
    assert "ASR: hello there" in page
    assert "codec_token_accuracy_cb0" not in page[: page.index("<details>")]  # no wide table


def test_wavs_are_16_bit_at_the_report_rate_and_clipped(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    loud = report["utterances"][1]["files"]["synthesized_wav"]
    audio, rate = load_audio(report_dir / loud)
    assert rate == SR
    assert audio.shape == (1, int(0.35 * SR))
    assert np.abs(audio).max() <= 1.0
    expected = np.clip(tone(0.35, 450, 1.5), -1, 1)
    np.testing.assert_allclose(audio[0], expected, atol=1 / 2**15 + 1e-6)


def test_a_new_report_replaces_the_old_one_and_a_failed_one_keeps_it(tmp_path):
    target = tmp_path / "evaluation"
    write_report(target, utterances())
    write_report(target, utterances()[:1])
    assert sorted(p.name for p in (target / "audio").iterdir()) == [
        f"spk1_0001.{role}.{kind}" for role in ("original", "round_trip", "synthesized")
        for kind in ("mp3", "wav")]
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}

    broken = UtteranceEvaluation("bad", "", tone(0.3, 220), np.full(100, np.nan, np.float32))
    with pytest.raises(ValueError, match="synth_audio of utterance 'bad' contains NaN"):
        write_report(target, utterances() + [broken])
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_a_crash_while_writing_leaves_the_old_report_and_no_temp_folder(tmp_path, monkeypatch):
    target = tmp_path / "evaluation"
    write_report(target, utterances()[:1])
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "plot_spectrograms", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, utterances())
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation"]


@pytest.mark.parametrize(
    ("utts", "message"),
    [([], "utterances is empty"),
     ([utterances()[0], utterances()[0]], "duplicate utterance_id values: \\['spk1_0001'\\]")],
)
def test_bad_utterance_lists_are_rejected(tmp_path, utts, message):
    with pytest.raises(ValueError, match=message):
        write_report(tmp_path / "evaluation", utts)
    assert not Path(tmp_path / "evaluation").exists()
