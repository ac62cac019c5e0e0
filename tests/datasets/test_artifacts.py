import numpy as np
import pytest
from kedro.io import DatasetError, Version

from bark_kedro.datasets.artifacts import CodecModelDataset, SemanticTokenizerDataset
from bark_kedro.tokenizers.codec import CodecTokenizer
from bark_kedro.tokenizers.features import build_feature_extractor
from bark_kedro.tokenizers.semantic import SemanticTokenizer, fit_semantic_quantizer
from tests.helpers.signals import tone


def semantic_tokenizer(n_clusters: int) -> SemanticTokenizer:
    ext = build_feature_extractor("mfcc", n_mfcc=5)
    feats = [ext(tone(1.0, 16_000, seed=s)) for s in range(2)]
    return SemanticTokenizer(ext, fit_semantic_quantizer(feats, n_clusters))


@pytest.mark.slow
def test_versions_are_kept_and_pinned(tmp_path):
    path = str(tmp_path / "semantic_tokenizer")
    SemanticTokenizerDataset(path, Version(None, "2024-01-01T00.00.00.000Z")).save(
        semantic_tokenizer(4))
    SemanticTokenizerDataset(path, Version(None, "2024-01-02T00.00.00.000Z")).save(
        semantic_tokenizer(6))
    assert sorted(p.name for p in (tmp_path / "semantic_tokenizer").iterdir()) == [
        "2024-01-01T00.00.00.000Z", "2024-01-02T00.00.00.000Z"]
    assert SemanticTokenizerDataset(path, Version(None, None)).load().vocab_size == 6
    pinned = SemanticTokenizerDataset(path, Version("2024-01-01T00.00.00.000Z", None))
    assert pinned.exists() and pinned.load().vocab_size == 4
    with pytest.raises(DatasetError, match="must not exist"):  # a version is never rewritten
        SemanticTokenizerDataset(path, Version(None, "2024-01-01T00.00.00.000Z")).save(
            semantic_tokenizer(4))


class Exploding(SemanticTokenizer):
    def save(self, directory):
        super().save(directory)
        raise RuntimeError("disk full")


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    good = semantic_tokenizer(4)
    dataset = SemanticTokenizerDataset(str(tmp_path / "tok"), Version(None, "v1"))
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save(Exploding(good.extractor, good.quantizer))
    assert list((tmp_path / "tok").rglob("*")) == []  # no version, final or temp folder
    assert not SemanticTokenizerDataset(str(tmp_path / "tok"), Version(None, None)).exists()
    with pytest.raises(DatasetError, match="SemanticTokenizer"):
        dataset.save("not a tokenizer")


@pytest.mark.slow
def test_codec_model_round_trip_keeps_the_random_flag(tmp_path):
    init = [tone(1.0, 24_000, seed=s) for s in range(2)]
    codec = CodecTokenizer.random(init, kmeans_iters=1)
    dataset = CodecModelDataset(str(tmp_path / "codec.pt"), Version(None, "v1"),
                                load_args={"batch_size": 3})
    dataset.save(codec)
    assert [p.name for p in (tmp_path / "codec.pt" / "v1").iterdir()] == ["codec.pt"]
    again = CodecModelDataset(str(tmp_path / "codec.pt"), Version(None, None),
                              load_args={"batch_size": 3}).load()
    assert again.weights_source == "random" and again.batch_size == 3
    audio = tone(0.3, 24_000, seed=4)
    np.testing.assert_array_equal(again.encode(audio), codec.encode(audio))
    with pytest.raises(DatasetError, match="no codec model"):
        CodecModelDataset(str(tmp_path / "codec.pt"), Version("v0", None)).load()
