"""Which stage limits the demo's intelligibility: the trained models of an environment, the
held-out sentences heard by the offline ASR (CER) when synthesized from text, from their
recorded semantic tokens (coarse + fine generated), and from their recorded coarse codes
(fine generated), beside the codec round trip; for one or more sampling settings.

Reads the latest trained models, tokens and codec of ``--env`` (run ``kedro run
--env=demo_speech`` first). Example::

    python benchmarks/demo_speech_probe.py --temperatures 0.7/0.7/0.5,0.3/0.5/0.5
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import jax
import numpy as np
from machine import cpu_model  # benchmarks/machine.py

TARGET = 1.5  # CER(synthesized) <= 1.5 x CER(codec round trip)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="demo_speech")
    parser.add_argument("--n-utterances", type=int, default=8)
    parser.add_argument("--temperatures", default="0.7/0.7/0.5",
                        help="semantic/coarse/fine temperatures, comma-separated settings")
    parser.add_argument("--min-eos-p", type=float, default=None,
                        help="override generation.config.min_eos_p (default: the env's)")
    parser.add_argument("--voice", default=None, help="same_speaker | none (default: the env's)")
    parser.add_argument("--sources", default="text,semantic,coarse",
                        help="what the audio is generated from: text, semantic, coarse")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from bark_kedro.evaluation.end_to_end import heldout_targets, same_speaker_prompts
    from bark_kedro.evaluation.intelligibility import build_recognizer, error_rates
    from bark_kedro.generation import GenerationConfig, make_synthesizer
    from bark_kedro.generation.coarse import generate_coarse
    from bark_kedro.generation.fine import generate_fine
    from bark_kedro.generation.sampling import row_keys
    from bark_kedro.pipelines.synthesize.params import GenerationParams
    from bark_kedro.tokenizers.shards import as_frame
    from bark_kedro.tokenizers.tables import codes_matrix
    from bark_kedro.tokenizers.text import text_tokenizer_from_dict

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores visible; load average "
          f"{os.getloadavg()[0]:.1f}")
    bootstrap_project(Path.cwd())
    with KedroSession.create(env=args.env) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        load = catalog.load
        models = [load(f"{s}_model") for s in ("semantic", "coarse", "fine")]
        layouts = {s: load(f"{s}_model_data_layout") for s in ("coarse", "fine")}
        tokenizer = text_tokenizer_from_dict(load("text_tokenizer"))
        codec = load("codec_model")
        utterances = load("utterances")
        semantic_tokens = as_frame(load("semantic_tokens"))
        codec_tokens = as_frame(load("codec_tokens"))
    generation, evaluate = params["generation"], params["evaluate"]  # typed parameters
    base = generation.config if isinstance(generation, GenerationParams) else GenerationConfig(
        **generation["config"])
    if args.min_eos_p is not None:
        base = base.replace(min_eos_p=args.min_eos_p)
    voice = args.voice or getattr(evaluate, "voice", None) or evaluate["voice"]
    targets = heldout_targets(utterances, codec_tokens, args.n_utterances)
    texts = [str(t) for t in targets["text"]]
    codec_by_id = codec_tokens.set_index("utterance_id")
    semantic_by_id = semantic_tokens.set_index("utterance_id")
    recorded = [codes_matrix(codec_by_id.loc[u].to_dict() | {"utterance_id": u}).astype(np.int64)
                for u in targets["utterance_id"]]
    recorded_semantic = [np.asarray(semantic_by_id.loc[u]["semantic_ids"], np.int64)
                         for u in targets["utterance_id"]]
    recognizer = build_recognizer("pocketsphinx")

    def cer_of(codes: list[np.ndarray | None]) -> float:
        rates = [1.0 if c is None else
                 error_rates(t, recognizer.transcribe(np.asarray(codec.decode(c)), 24_000))["cer"]
                 for t, c in zip(texts, codes, strict=True)]
        return float(np.mean(rates))

    started, cpu0 = time.perf_counter(), _cpu_s()
    trip = cer_of(recorded)
    print(f"round trip: CER {trip:.3f} ({len(texts)} held-out sentences, voice {voice})",
          flush=True)
    for setting in args.temperatures.split(","):
        sem_t, coarse_t, fine_t = (float(x) for x in setting.split("/"))
        config = base.replace(semantic_temperature=sem_t, coarse_temperature=coarse_t,
                              fine_temperature=fine_t)
        synth = make_synthesizer(*models, tokenizer, codec, config,
                                 coarse_layout=layouts["coarse"], fine_layout=layouts["fine"])
        n_coarse = synth.vocab.n_coarse_codebooks
        prompts = (same_speaker_prompts(targets, semantic_tokens, codec_tokens, n_coarse)
                   if voice == "same_speaker" else [None] * len(texts))
        keys = row_keys(jax.random.key(args.seed), len(texts))
        options = dict(config=synth.config)
        for source in args.sources.split(","):
            t0 = time.perf_counter()
            if source == "text":
                out = synth.generate_tokens(texts, prompts, keys)
                codes = [None if o is None else o.fine for o in out]
            elif source == "semantic":
                coarse = generate_coarse(models[1], recorded_semantic,
                                         [None if p is None else p.coarse_history for p in prompts],
                                         key=keys, **options)
                codes = generate_fine(models[2], coarse,
                                      [None if p is None else p.fine for p in prompts],
                                      key=keys, **options)
            elif source == "coarse":
                codes = generate_fine(models[2], [r[:n_coarse] for r in recorded],
                                      [None if p is None else p.fine for p in prompts],
                                      key=keys, **options)
            else:
                raise SystemExit(f"--sources: unknown source {source!r}")
            cer = cer_of(codes)
            print(f"temperatures {setting} from {source}: CER {cer:.3f} (ratio {cer / trip:.2f}, "
                  f"target <= {TARGET}); {time.perf_counter() - t0:.0f} s wall", flush=True)
    print(f"probe: {time.perf_counter() - started:.0f} s wall, {_cpu_s() - cpu0:.0f} s CPU")


if __name__ == "__main__":
    main()
