"""Small random models written in the formats users download: a transformers HubertModel
folder, a fairseq HuBERT checkpoint, a torchaudio state dict, and quantizer ``.pth`` files."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from bark_kedro.tokenizers.bark_semantic import BarkQuantizerNet, write_quantizer_file

DIM = 32
N_LAYERS = 9  # enough for layer 9, the layer Bark-compatible quantizers read
CONV = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2  # HuBERT's strides: hop 320


def tiny_hf_hubert(seed: int = 0):
    """A transformers HubertModel with HuBERT Base's structure, shrunk, random weights."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=DIM, num_hidden_layers=N_LAYERS, num_attention_heads=2,
        intermediate_size=64, conv_dim=[c for c, _, _ in CONV],
        conv_kernel=[k for _, k, _ in CONV], conv_stride=[s for _, _, s in CONV],
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        do_stable_layer_norm=False, conv_bias=False)
    model = HubertModel(config).eval()
    with torch.no_grad():  # norms away from their (1, 0) init, so a skipped norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def save_hf_folder(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


# transformers' names -> fairseq's (as in fairseq's HubertModel / TransformerEncoder)
_TO_FAIRSEQ = [
    (r"feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_projection\.projection\.", "post_extract_proj."),
    (r"feature_projection\.layer_norm\.", "layer_norm."),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"masked_spec_embed", "mask_emb"),
]


def save_fairseq_checkpoint(model, path: Path) -> Path:
    """``model``'s weights as fairseq's ``hubert_base_ls960.pt`` lays them out."""
    state = {}
    for key, value in model.state_dict().items():
        for pattern, replacement in _TO_FAIRSEQ:
            if re.match(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        state[key] = value.clone()
    state["label_embs_concat"] = torch.randn(504, 8)
    state["final_proj.weight"], state["final_proj.bias"] = torch.randn(8, DIM), torch.zeros(8)
    c = model.config
    model_cfg = {"_name": "hubert", "encoder_layers": c.num_hidden_layers,
                 "encoder_embed_dim": c.hidden_size, "encoder_ffn_embed_dim": c.intermediate_size,
                 "encoder_attention_heads": c.num_attention_heads, "extractor_mode": "default",
                 "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] + [(16,2,2)]",
                 "conv_bias": False, "conv_pos": 16, "conv_pos_groups": 4,
                 "layer_norm_first": False}
    checkpoint = {"args": argparse.Namespace(arch="hubert"), "model": state,
                  "cfg": {"model": model_cfg, "task": {"normalize": False, "sample_rate": 16000}},
                  "optimizer_history": [{"num_updates": 1}], "extra_state": {}}
    torch.save(checkpoint, path)
    return path


def save_quantizer(path: Path, version: int = 0, input_size: int = DIM, hidden_size: int = 16,
                   output_size: int = 50, seed: int = 0, info: bool = True) -> BarkQuantizerNet:
    """A random quantizer in the published layout (``info=False``: no ``.info`` entry)."""
    torch.manual_seed(seed)
    net = BarkQuantizerNet(input_size, hidden_size, output_size, version).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)  # sharper logits: argmax ids vary from frame to frame
    if info:
        write_quantizer_file(path, net)
    else:
        torch.save(net.state_dict(), path)
    return net
