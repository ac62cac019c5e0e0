"""Wiring of the tokenize pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    build_codec,
    collect_rejects,
    fit_semantic_tokenizer,
    fit_text_tokenizer,
    summarize_tokenize,
    tokenize_codec,
    tokenize_semantic,
    tokenize_text,
    tokenized_results,
)


def create_pipeline(**kwargs) -> Pipeline:
    """utterances -> (fit on train) text / semantic / codec tokenizers -> token tables (written
    shard by shard as they are tokenized), their rejects and figures (read back from the written
    tables), summary."""
    params = "params:tokenize"
    return pipeline(
        [
            node(fit_text_tokenizer, ["utterances", params], "text_tokenizer",
                 name="fit_text_tokenizer"),
            node(tokenize_text, ["utterances", "text_tokenizer", params],
                 "text_tokens", name="tokenize_text"),
            node(fit_semantic_tokenizer, ["utterances", params],
                 ["semantic_tokenizer", "semantic_fit_stats"], name="fit_semantic_tokenizer"),
            node(tokenize_semantic, ["utterances", "semantic_tokenizer", params],
                 "semantic_tokens",
                 name="tokenize_semantic"),
            node(build_codec, ["utterances", params], "codec_model", name="build_codec"),
            node(tokenize_codec, ["utterances", "codec_model", params],
                 "codec_tokens", name="tokenize_codec"),
            *(node(tokenized_results, f"{stage}_tokens", [f"{stage}_rejects", f"{stage}_stats"],
                   name=f"{stage}_results") for stage in ("text", "semantic", "codec")),
            node(collect_rejects, ["text_rejects", "semantic_rejects", "codec_rejects"],
                 "rejected_tokenization", name="collect_tokenize_rejects"),
            node(summarize_tokenize,
                 ["utterances", "rejected_tokenization", "text_stats", "semantic_fit_stats",
                  "semantic_stats", "codec_stats", "codec_model", params],
                 ["tokenize_summary", "tokenize_metrics", "tokenize_tags"],
                 name="summarize_tokenize"),
        ],
        tags="tokenize",
    )
