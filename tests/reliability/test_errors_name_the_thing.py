"""Errors that name the input and the problem, raised before any expensive work."""

import time

import pandas as pd
import pytest

from bark_kedro.tokenizers.codec import CodecTokenizer, load_codec
from bark_kedro.tokenizers.config import SemanticConfig
from bark_kedro.tokenizers.corpus import fit_semantic_tokenizer


@pytest.mark.parametrize("content", [None, b"root:x:0:0:root:/root:/bin/bash\n", b"\x80\x02junk"])
def test_a_file_that_is_not_a_state_dict_is_named(tmp_path, content):
    path = "/etc/passwd" if content is None else tmp_path / "weights.th"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{path}.*not an EnCodec state dict"):
        CodecTokenizer.from_checkpoint(path)
    with pytest.raises(ValueError, match="not an EnCodec state dict"):
        load_codec("local", path)


def test_n_clusters_above_the_frames_fails_before_feature_extraction():
    utterances = pd.DataFrame({
        "utterance_id": ["a", "b"], "speaker": ["s", "s"], "text": ["x", "y"],
        "duration_s": [0.5, 0.4], "audio_24k_path": ["/nowhere/a.wav", "/nowhere/b.wav"],
        "audio_16k_path": ["/nowhere/a.wav", "/nowhere/b.wav"], "split": ["train", "train"],
        "source_path": ["", ""]})
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"at most 47 feature frames.*n_clusters=500"):
        fit_semantic_tokenizer(utterances, SemanticConfig(features="mfcc", n_clusters=500),
                               progress=False)
    assert time.perf_counter() - started < 5  # no clip was read (they do not even exist)
