"""HuBERT / wav2vec2 weights in the formats users have, as torchaudio ``Wav2Vec2Model``s.

- ``torchaudio``: a state dict of torchaudio's model (what ``HUBERT_BASE.get_model()`` caches);
- ``fairseq``: a fairseq checkpoint such as ``hubert_base_ls960.pt`` (a dict with ``model``, the
  state dict in fairseq's names, and ``cfg`` / ``args``, the training configuration); read
  without fairseq and without running pickled code;
- ``transformers``: a folder written by ``HubertModel.save_pretrained`` / ``Wav2Vec2Model``
  (``config.json`` + weights), converted by torchaudio's ``import_huggingface_model``.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any

import torch
import torchaudio

WEIGHT_FORMATS = ("torchaudio", "fairseq", "transformers")
# fairseq's defaults (Wav2Vec2Config / HubertConfig) where a checkpoint's config is silent
_FAIRSEQ_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
_SAFE_FOREIGN_MODULES = ("fairseq", "omegaconf")
_FAIRSEQ_UNUSED = re.compile(r"^(label_embs_concat|final_proj\.|mask_emb|quantizer\.|project_q\.)")


class _Inert:
    """Stands in for a pickled fairseq/omegaconf object (an enum value, a config node) without
    running its code: keeps the constructor arguments and state, and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def value(self) -> Any:
        return self.args[0] if len(self.args) == 1 else self


def _plain(value: Any) -> Any:
    return value.value() if isinstance(value, _Inert) else value


def read_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` and inert stand-ins
    for fairseq's / omegaconf's config classes (so fairseq checkpoints load); any other global
    is refused with its name."""
    foreign = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path)
               if g != "argparse.Namespace"]
    unsafe = [g for g in foreign if not g.startswith(_SAFE_FOREIGN_MODULES)]
    if unsafe:
        raise ValueError(f"{str(path)!r} pickles objects other than tensors and configs "
                         f"({unsafe}); refusing to load it")
    allowed = [argparse.Namespace, *((_Inert, name) for name in foreign)]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure names the file
        raise ValueError(f"cannot read {str(path)!r} as torch weights: {err}") from err


def is_fairseq_checkpoint(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("model"), dict)
            and ("cfg" in obj or "args" in obj))


# ---- fairseq ----------------------------------------------------------------------------------
def _fairseq_option(checkpoint: dict, name: str, default: Any) -> Any:
    cfg = checkpoint.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if isinstance(model_cfg, dict) and model_cfg.get(name) is not None:
        return _plain(model_cfg[name])
    args = checkpoint.get("args")
    if isinstance(args, argparse.Namespace) and getattr(args, name, None) is not None:
        return _plain(getattr(args, name))
    return default


def _literal_layers(text: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``[(512,10,5)] + [(512,3,2)] * 4``,
    evaluated over literals, ``+`` and ``*`` only."""
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported conv_feature_layers expression {text!r}")

    return [tuple(layer) for layer in ev(ast.parse(text, mode="eval"))]


def fairseq_model_params(checkpoint: dict, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """torchaudio ``wav2vec2_model`` arguments of a fairseq HuBERT / wav2vec2 checkpoint."""
    conv = _fairseq_option(checkpoint, "conv_feature_layers", None)
    conv_layers = _literal_layers(conv) if isinstance(conv, str) else list(_FAIRSEQ_CONV)
    group_norm = "feature_extractor.conv_layers.0.2.weight" in state
    mode = "group_norm" if group_norm else "layer_norm"
    embed = int(state["post_extract_proj.weight"].shape[0])
    pos_v = next(v for k, v in state.items() if k.startswith("encoder.pos_conv.0.weight")
                 and not k.endswith(("weight_g", "original0")))
    n_layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
    layer_norm_first = bool(_fairseq_option(checkpoint, "layer_norm_first", mode == "layer_norm"))
    return {
        "extractor_mode": mode,
        "extractor_conv_layer_config": conv_layers,
        "extractor_conv_bias": "feature_extractor.conv_layers.0.0.bias" in state,
        "encoder_embed_dim": embed,
        "encoder_projection_dropout": 0.0,
        "encoder_pos_conv_kernel": int(pos_v.shape[2]),
        "encoder_pos_conv_groups": embed // int(pos_v.shape[1]),
        "encoder_num_layers": n_layers,
        "encoder_num_heads": int(_fairseq_option(checkpoint, "encoder_attention_heads",
                                                 embed // 64)),
        "encoder_attention_dropout": 0.0,
        "encoder_ff_interm_features": int(state["encoder.layers.0.fc1.weight"].shape[0]),
        "encoder_ff_interm_dropout": 0.0,
        "encoder_dropout": 0.0,
        "encoder_layer_norm_first": layer_norm_first,
        "encoder_layer_drop": 0.0,
        "aux_num_out": None,
    }


def _fairseq_key(key: str) -> str | None:
    """torchaudio's name of fairseq parameter ``key`` (None: not part of the encoder)."""
    key = key.removeprefix("w2v_model.")
    if _FAIRSEQ_UNUSED.match(key):
        return None
    rules = [
        (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
        (r"feature_extractor\.conv_layers\.0\.2\.", "feature_extractor.conv_layers.0.layer_norm."),
        (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.",
         r"feature_extractor.conv_layers.\1.layer_norm."),
        (r"post_extract_proj\.", "encoder.feature_projection.projection."),
        (r"layer_norm\.", "encoder.feature_projection.layer_norm."),
        (r"encoder\.pos_conv\.0\.weight_g$",
         "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0"),
        (r"encoder\.pos_conv\.0\.weight_v$",
         "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1"),
        (r"encoder\.pos_conv\.0\.", "encoder.transformer.pos_conv_embed.conv."),
        (r"encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
        (r"encoder\.layers\.(\d+)\.self_attn\.", r"encoder.transformer.layers.\1.attention."),
        (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.",
         r"encoder.transformer.layers.\1.layer_norm."),
        (r"encoder\.layers\.(\d+)\.fc1\.",
         r"encoder.transformer.layers.\1.feed_forward.intermediate_dense."),
        (r"encoder\.layers\.(\d+)\.fc2\.",
         r"encoder.transformer.layers.\1.feed_forward.output_dense."),
        (r"encoder\.layers\.(\d+)\.final_layer_norm\.",
         r"encoder.transformer.layers.\1.final_layer_norm."),
    ]
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub("^" + pattern, replacement, key)
    raise ValueError(f"unexpected parameter {key!r} in a fairseq HuBERT / wav2vec2 checkpoint")


def model_from_fairseq(checkpoint: dict, path: Path) -> tuple[torch.nn.Module, bool]:
    """torchaudio's model holding a fairseq checkpoint's weights, and whether the model was
    trained on normalized waveforms (fairseq's ``task.normalize``)."""
    state = checkpoint["model"]
    try:
        params = fairseq_model_params(checkpoint, state)
        mapped = {new: value for key, value in state.items()
                  if (new := _fairseq_key(key)) is not None}
    except (KeyError, StopIteration, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a fairseq HuBERT / wav2vec2 checkpoint: "
                         f"{err!r}") from err
    model = torchaudio.models.wav2vec2_model(**params)
    try:
        model.load_state_dict(mapped)
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r}: fairseq weights do not fit {params}: {err}") from err
    task = checkpoint.get("cfg", {}).get("task") if isinstance(checkpoint.get("cfg"), dict) else None
    normalize = _plain(task.get("normalize")) if isinstance(task, dict) else None
    if normalize is None:
        args = checkpoint.get("args")
        normalize = getattr(args, "normalize", params["encoder_layer_norm_first"])
    return model.eval(), bool(normalize)


# ---- transformers -----------------------------------------------------------------------------
def model_from_transformers(folder: Path) -> tuple[torch.nn.Module, bool]:
    """torchaudio's model from a transformers ``HubertModel`` / ``Wav2Vec2Model`` folder (read
    locally, never downloaded), and whether it expects normalized waveforms."""
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a transformers model folder "
                                f"(no config.json)")
    from torchaudio.models.wav2vec2.utils import import_huggingface_model
    try:
        from transformers import AutoModel
    except ImportError as err:
        raise ValueError(f"reading the transformers folder {str(folder)!r} needs the "
                         f"`transformers` package (pip install transformers), or use the "
                         f"torchaudio / fairseq file of the same weights") from err

    try:
        original = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        model = import_huggingface_model(original)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load a HuBERT / wav2vec2 model from {str(folder)!r}: "
                         f"{err}") from err
    normalize = getattr(original.config, "feat_extract_norm", "group") == "layer"
    return model.eval(), normalize
