"""The real-work hearing models load from local folders in the official transformers format:
tiny Whisper and WavLM x-vector models with random weights, written by ``save_pretrained``."""

import numpy as np
import pytest
import torch

from bark_kedro.evaluation.intelligibility import WhisperRecognizer, build_recognizer
from bark_kedro.evaluation.speaker import WavLMSpeakerEncoder, build_speaker_encoder

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SR = 24_000
WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>",
                    "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                    "<|notimestamps|>"]


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(SR * seconds)).astype(np.float32)


def byte_level_whisper_tokenizer():
    """A Whisper tokenizer over the 256 byte symbols plus Whisper's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(WHISPER_SPECIALS)
    end = "<|endoftext|>"
    return transformers.WhisperTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end,
                                             unk_token=end, pad_token=end)


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = byte_level_whisper_tokenizer()
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in WHISPER_SPECIALS}
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, num_mel_bins=80, max_target_positions=32, pad_token_id=end,
        bos_token_id=end, eos_token_id=end, decoder_start_token_id=start)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, max_length=10,
        is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"])
    folder = tmp_path_factory.mktemp("models") / "whisper-tiny-random"
    model.save_pretrained(folder)
    transformers.WhisperProcessor(transformers.WhisperFeatureExtractor(feature_size=80),
                                  tokenizer).save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def wavlm_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.WavLMConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, tdnn_dim=(8, 8), tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1), xvector_output_dim=12, num_buckets=16, max_bucket_distance=32)
    model = transformers.WavLMForXVector(config).eval()
    folder = tmp_path_factory.mktemp("models") / "wavlm-sv"
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16_000).save_pretrained(folder)
    return folder, model


@pytest.mark.slow
def test_whisper_loads_a_saved_folder_and_transcribes(whisper_folder):
    folder, saved = whisper_folder
    recognizer = build_recognizer("whisper", str(folder))
    assert isinstance(recognizer, WhisperRecognizer) and "whisper-tiny-random" in recognizer.name
    loaded = dict(recognizer._model.named_parameters())
    for name, value in saved.named_parameters():
        torch.testing.assert_close(loaded[name], value, msg=f"weight {name} not loaded")
    text = recognizer.transcribe(noise(), SR)
    assert isinstance(text, str) and "<|" not in text  # special tokens are not transcribed
    assert text == recognizer.transcribe(noise(), SR)  # greedy decoding: the same each time


@pytest.mark.slow
def test_whisper_folder_without_weights_fails_clearly(whisper_folder, tmp_path):
    folder, _ = whisper_folder
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(OSError):
        WhisperRecognizer(tmp_path)


@pytest.mark.slow
def test_wavlm_loads_a_saved_folder_and_embeds(wavlm_folder):
    folder, saved = wavlm_folder
    encoder = build_speaker_encoder("wavlm", str(folder))
    assert isinstance(encoder, WavLMSpeakerEncoder) and "wavlm-sv" in encoder.name
    loaded = dict(encoder._model.named_parameters())
    for name, value in saved.named_parameters():
        torch.testing.assert_close(loaded[name], value, msg=f"weight {name} not loaded")
    a, b = encoder.embed(noise(seed=1), SR), encoder.embed(noise(2.0, seed=2), SR)
    assert a.shape == b.shape == (12,) and np.all(np.isfinite(a))
    np.testing.assert_allclose(encoder.embed(noise(seed=1), SR), a, rtol=1e-5, atol=1e-7)
    with torch.inference_mode():  # the same x-vector as the saved model's on 16 kHz input
        from bark_kedro.evaluation.intelligibility import to_16k

        inputs = encoder._extractor(to_16k(noise(seed=1), SR), sampling_rate=16_000,
                                    return_tensors="pt")
        np.testing.assert_allclose(saved(**inputs).embeddings[0].numpy(), a, rtol=1e-4,
                                   atol=1e-6)
