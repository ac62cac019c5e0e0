"""``bark-kedro-synthesize``: text (+ optional voice) -> WAV, without Kedro.

Models are Orbax directories written by ``bark_kedro.models.save_model`` or official
suno ``.pt`` files; the tokenizers are the project's artifacts (a text tokenizer JSON, a
``CodecTokenizer.save`` file, and for voice cloning a ``SemanticTokenizer.save``
directory, or for the official models a Bark-compatible quantizer ``.pth`` with ``--hubert``).
Example::

    bark-kedro-synthesize "Hello there. How are you?" -o hello.wav \\
        --semantic models/semantic --coarse models/coarse --fine models/fine \\
        --text-tokenizer text_tokenizer.json --codec codec.pt --voice speaker.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from bark_kedro.generation.config import GenerationConfig

logger = logging.getLogger("bark_kedro.synthesize")

_FIELDS = {f.name: f for f in dataclasses.fields(GenerationConfig)}


def _optional(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    return parse


# ``--help`` text of the generation options (their meaning: :class:`GenerationConfig`)
_HELP = {
    "semantic_temperature": "softmax temperature of the semantic stage (> 0)",
    "coarse_temperature": "softmax temperature of the coarse stage (> 0)",
    "fine_temperature": "softmax temperature of the fine stage; none: argmax",
    "top_k": "keep the k likeliest tokens (semantic and coarse stages); none: all",
    "top_p": "nucleus sampling: keep the likeliest tokens up to this total probability; "
             "none: all",
    "min_eos_p": "stop the semantic stage once p(end) reaches this; none: only on the end token",
    "allow_early_stop": "true/false: the semantic stage may end before its cap",
    "max_semantic_tokens": "cap of semantic tokens; none: the model's room (768 for Bark)",
    "semantic_window": "semantic tokens per coarse window",
    "max_coarse_history": "interleaved coarse tokens of history per coarse window",
    "sliding_window_len": "new coarse tokens per window",
    "fine_window": "frames per fine window (windows move by half of it)",
    "semantic_rate_hz": "semantic token rate (fixes how many coarse tokens follow)",
    "coarse_rate_hz": "coarse frame rate",
    "sentence_pause_s": "seconds of silence between the sentences of a long text",
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` only where there is a default to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments (generation options mirror :class:`GenerationConfig`)."""
    parser = argparse.ArgumentParser(
        prog="bark-kedro-synthesize", description="Synthesize speech with Bark-style models.",
        formatter_class=_HelpFormatter)
    parser.add_argument("text", nargs="?", help="text to speak (or use --text-file)")
    parser.add_argument("--text-file", type=Path, help="read the text from this file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    models = parser.add_argument_group("models (Orbax directory or suno .pt file)")
    for stage in ("semantic", "coarse", "fine"):
        models.add_argument(f"--{stage}", type=Path, required=True, help=f"the {stage} model")
    tok = parser.add_argument_group("tokenizers")
    tok.add_argument("--text-tokenizer", type=Path, required=True,
                     help="text tokenizer JSON (TextTokenizer.to_dict)")
    tok.add_argument("--codec", type=Path, required=True,
                     help="codec file written by CodecTokenizer.save / MelCodec.save (or EnCodec .th weights)")
    tok.add_argument("--semantic-tokenizer", type=Path,
                     help="for --clone: a SemanticTokenizer.save directory, or a Bark-compatible "
                          "quantizer (quantifier_hubert_base_ls960*.pth), which official Bark "
                          "models need")
    tok.add_argument("--hubert", type=Path,
                     help="HuBERT Base weights for a quantizer .pth (torchaudio state dict, "
                          "fairseq hubert_base_ls960.pt or transformers folder; default: "
                          "torchaudio's HUBERT_BASE in torch hub's cache)")
    voice = parser.add_argument_group("voice")
    voice.add_argument("--voice", type=Path, help="Bark .npz voice prompt")
    voice.add_argument("--clone", type=Path, help="a recording of the voice to imitate")
    voice.add_argument("--save-voice", type=Path, help="write the voice prompt used to this .npz")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0, help="random seed of the sampling")
    gen.add_argument("--bfloat16", action="store_true",
                     help="bfloat16 weights and compute (half the memory traffic; fast on "
                          "GPU/TPU, slower on CPUs, where XLA has no fast bfloat16 matmul)")
    gen.add_argument("--fit-windows", action="store_true",
                     help="coarse/fine windows as the training layouts used them for these "
                          "models' block sizes (for models trained here; Bark's own at 1024)")
    defaults = GenerationConfig()
    kinds = {"fine_temperature": _optional(float), "top_k": _optional(int),
             "top_p": _optional(float), "min_eos_p": _optional(float),
             "max_semantic_tokens": _optional(int), "allow_early_stop": _bool}
    for name in _FIELDS:
        kind = kinds.get(name, type(getattr(defaults, name)))
        gen.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                         default=getattr(defaults, name), help=_HELP.get(name))
    return parser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def load_stage_model(path: Path, stage: str, vocab=None, **overrides):
    """A model from an Orbax directory (``models.load_model``) or a suno ``.pt`` file;
    ``overrides`` change config fields such as ``dtype``."""
    from bark_kedro.models import BARK_VOCAB, load_model, load_suno_checkpoint

    if path.is_dir():
        model, config = load_model(path, **overrides)
        found = getattr(config, "stage", "fine")
        if found != stage:
            raise ValueError(f"{str(path)!r} holds the {found} model, not the {stage} model")
        return model
    if path.is_file():
        return load_suno_checkpoint(path, stage=stage, vocab=vocab or BARK_VOCAB, **overrides)[0]
    raise FileNotFoundError(f"--{stage}: {str(path)!r} is neither a model directory nor a file")


def load_text_tokenizer(path: Path):
    """The text tokenizer saved as JSON by ``to_dict()``."""
    from bark_kedro.tokenizers.text import text_tokenizer_from_dict

    if not path.is_file():
        raise FileNotFoundError(f"--text-tokenizer: {str(path)!r} does not exist")
    return text_tokenizer_from_dict(json.loads(path.read_text(encoding="utf-8")))


def clone_tokenizer(args, official_models: bool):
    """The semantic tokenizer ``--clone`` uses; official Bark models need Bark's own ids."""
    from bark_kedro.tokenizers.semantic import load_semantic_tokenizer

    if args.semantic_tokenizer is None:
        raise ValueError("--clone needs --semantic-tokenizer (a SemanticTokenizer.save directory, "
                         "or a quantifier_hubert_base_ls960*.pth for official Bark models)")
    tokenizer = load_semantic_tokenizer(args.semantic_tokenizer, args.hubert)
    if official_models and not tokenizer.bark_compatible:
        raise ValueError(f"--semantic-tokenizer {str(args.semantic_tokenizer)!r} gives "
                         f"{tokenizer.quantizer_kind} ids, which mean nothing to the official "
                         f"Bark models: pass a quantifier_hubert_base_ls960*.pth (with --hubert)")
    return tokenizer


def _voice(args, synthesizer):
    from bark_kedro.generation.voice import load_voice_prompt, voice_prompt_from_audio

    if args.voice and args.clone:
        raise ValueError("give either --voice or --clone, not both")
    if args.voice:
        return load_voice_prompt(args.voice)
    if not args.clone:
        return None
    official = any(p.is_file() for p in (args.semantic, args.coarse, args.fine))
    tokenizer = clone_tokenizer(args, official)
    from bark_kedro.audio.io import load_audio
    from bark_kedro.audio.processing import to_mono

    audio, rate = load_audio(args.clone)
    prompt = voice_prompt_from_audio(to_mono(audio), rate, tokenizer, synthesizer.codec,
                                     synthesizer.vocab.n_coarse_codebooks)
    return prompt.check(synthesizer.vocab)


def run(args: argparse.Namespace) -> Path:
    """Load everything named in ``args``, synthesize, write the WAV; returns its path."""
    from bark_kedro.audio.io import write_audio_atomic
    from bark_kedro.generation.synthesis import SAMPLE_RATE, make_synthesizer
    from bark_kedro.generation.voice import save_voice_prompt
    from bark_kedro.tokenizers.codec import load_codec_file

    if (args.text is None) == (args.text_file is None):
        raise ValueError("give the text either as an argument or with --text-file")
    text = args.text if args.text_file is None else args.text_file.read_text(encoding="utf-8")
    config = GenerationConfig(**{name: getattr(args, name) for name in _FIELDS})
    orbax_dirs = [p for p in (args.semantic, args.coarse, args.fine) if p.is_dir()]
    vocab = None
    if orbax_dirs:
        from bark_kedro.models import load_config

        vocab = load_config(orbax_dirs[0]).vocab
    overrides = {"dtype": "bfloat16"} if args.bfloat16 else {}
    models = [load_stage_model(p, s, vocab, **overrides) for p, s in
              ((args.semantic, "semantic"), (args.coarse, "coarse"), (args.fine, "fine"))]
    codec = load_codec_file(args.codec)
    synthesizer = make_synthesizer(*models, load_text_tokenizer(args.text_tokenizer), codec,
                                   config, fit_windows_to_models=args.fit_windows,
                                   bfloat16=args.bfloat16)
    voice = _voice(args, synthesizer)
    if args.save_voice and voice is None:
        raise ValueError("--save-voice needs --voice or --clone")
    if args.save_voice:
        save_voice_prompt(args.save_voice, voice)
        logger.info("wrote voice prompt %s", args.save_voice)
    audio = synthesizer.synthesize(text, voice=voice, seed=args.seed)
    path = write_audio_atomic(args.output, audio, SAMPLE_RATE)
    logger.info("wrote %s (%.2f s of audio)", path, len(audio) / SAMPLE_RATE)
    return path


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 on bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
