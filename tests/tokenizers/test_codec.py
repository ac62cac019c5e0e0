import numpy as np
import pytest
import torch

from bark_kedro.tokenizers.codec import (
    CHECKPOINT_NAME,
    CodecTokenizer,
    _new_model,
    expected_codec_checkpoint,
    load_codec,
)
from bark_kedro.tokenizers.frames import CODEC_RATE_HZ, codec_frame_count
from bark_kedro.tokenizers.mel_codec import MelCodecConfig

SR = 24_000


@pytest.fixture(scope="module")
def init_audio():
    from tests.helpers.signals import tone

    return [tone(1.0, SR, seed=0), tone(1.0, SR, seed=1)]


@pytest.fixture(scope="module")
def codec(init_audio):
    return CodecTokenizer.random(init_audio, seed=0, kmeans_iters=3)


def test_random_codec_shapes_rates_and_dtype(codec, make_tone):
    clips = [make_tone(1.0, SR, seed=3), make_tone(1.337, SR, seed=4), make_tone(0.004, SR)]
    codes = codec.encode_batch(clips)
    assert codec.weights_source == "random" and codec.n_codebooks == 8
    for clip, c in zip(clips, codes, strict=True):
        assert c.dtype == np.int16
        assert c.shape == (8, codec_frame_count(len(clip)))
        assert c.min() >= 0 and c.max() < 1024
    assert codes[0].shape[1] == CODEC_RATE_HZ  # 1 s -> 75 frames
    assert codes[2].shape == (8, 1)  # shorter than one frame (96 samples)


def test_kmeans_init_makes_codes_diverse(codec, make_tone):
    audio = make_tone(1.0, SR, seed=5)
    raw = _new_model()  # uninitialised codebooks are all zeros: every frame gets code 0
    with torch.inference_mode():
        raw_codes = raw.encode(torch.from_numpy(audio)[None, None])[0][0]
    assert raw_codes.unique().tolist() == [0]
    with pytest.raises(ValueError, match="not initialised"):
        CodecTokenizer(raw, "random")
    codes = codec.encode(audio)
    assert len(np.unique(codes[0])) > 20


def test_batched_matches_one_at_a_time(codec, make_tone):
    clips = [make_tone(d, SR, seed=s) for s, d in enumerate((0.7, 1.2, 0.31))]
    batched = codec.encode_batch(clips)
    for clip, b in zip(clips, batched, strict=True):
        single = codec.encode(clip)
        assert single.shape == b.shape
        # float rounding differs between batch sizes and may flip a near-tie (the random
        # codebooks have many): a wrong padding or trim would leave far fewer matches
        assert np.mean(single[0] == b[0]) >= 0.9
        assert np.mean(single == b) >= 0.9


def test_long_audio_is_chunked(init_audio, codec, make_tone):
    chunked = codec.with_options(max_chunk_seconds=0.5)
    audio = make_tone(1.3, SR, seed=6)
    whole, parts = codec.encode(audio), chunked.encode(audio)
    assert parts.shape == whole.shape == (8, codec_frame_count(len(audio)))
    # EnCodec is causal: the first chunk sees exactly what the whole clip's start sees
    first = chunked.chunk_samples // 320
    assert np.mean(parts[0, :first] == whole[0, :first]) >= 0.9  # near-ties may flip


@pytest.mark.slow
def test_save_and_load_keep_codes_and_source(codec, tmp_path, make_tone):
    audio = make_tone(0.5, SR, seed=7)
    codec.save(tmp_path / "codec.pt")
    again = load_codec("local", checkpoint=tmp_path / "codec.pt")
    assert again.weights_source == "random"
    np.testing.assert_array_equal(again.encode(audio), codec.encode(audio))
    torch.save(codec.model.state_dict(), tmp_path / "plain.th")
    assert CodecTokenizer.from_checkpoint(tmp_path / "plain.th").weights_source == "local"


def test_pretrained_only_from_the_hub_cache(codec, tmp_path, make_tone):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        assert expected_codec_checkpoint() == tmp_path / "hub" / "checkpoints" / CHECKPOINT_NAME
        with pytest.raises(FileNotFoundError, match=CHECKPOINT_NAME):
            load_codec("pretrained")
        expected_codec_checkpoint().parent.mkdir(parents=True)
        torch.save(codec.model.state_dict(), expected_codec_checkpoint())
        pre = load_codec("pretrained")
        assert pre.weights_source == "pretrained"
        audio = make_tone(0.3, SR)
        np.testing.assert_array_equal(pre.encode(audio), codec.encode(audio))
    finally:
        torch.hub.set_dir(old)


@pytest.mark.slow
def test_same_seed_same_codec(init_audio, codec, make_tone):
    other = CodecTokenizer.random(init_audio, seed=0, kmeans_iters=3)
    audio = make_tone(0.4, SR, seed=8)
    np.testing.assert_array_equal(other.encode(audio), codec.encode(audio))


@pytest.mark.slow
def test_decode(codec, make_tone):
    codes = codec.encode(make_tone(0.5, SR))
    audio = codec.decode(codes)
    assert audio.shape == (codes.shape[1] * 320,) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio))
    batch = codec.decode(np.stack([codes, codes]))
    assert batch.shape == (2, codes.shape[1] * 320)
    np.testing.assert_allclose(batch[0], audio, atol=1e-5)
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(np.full((8, 3), 1024))
    with pytest.raises(ValueError, match="shape"):
        codec.decode(np.zeros(5, np.int16))


def test_bad_input_is_named(codec, init_audio):
    with pytest.raises(ValueError, match="24000 Hz"):
        codec.encode(init_audio[0], sample_rate=16_000)
    with pytest.raises(ValueError, match=r"audio\[0\].*mono"):
        codec.encode_batch([np.zeros((2, 100), np.float32)])
    with pytest.raises(ValueError, match="needs init_audio"):
        load_codec("random")
    with pytest.raises(ValueError, match="checkpoint path"):
        load_codec("local")
    with pytest.raises(ValueError, match="weights must be one of"):
        load_codec("best")


@pytest.mark.slow
def test_parallel_cpu_path_matches_padded_batches(codec, make_tone):
    from bark_kedro.tokenizers.codec_encoder import inference_copy

    clips = [make_tone(d, SR, seed=s) for s, d in enumerate((0.9, 0.35, 1.4, 0.04, 0.013))]
    with torch.inference_mode():  # the library's own one-clip path (full frames, no chunks)
        alone = [codec.model.encode(torch.from_numpy(np.pad(c, (0, -len(c) % 320)))[None, None]
                                    )[0][0][0].numpy() for c in clips]
    one = codec.with_options(cpu_workers=1, batch_size=3).encode_batch(clips)
    two = codec.with_options(cpu_workers=2, batch_size=3).encode_batch(clips)
    for ref, a, b in zip(alone, one, two, strict=True):
        assert ref.shape == a.shape == b.shape and a.dtype == np.int16
    # one clip per group (the same groups for any thread count): the thread does not matter
    singles = [codec.with_options(cpu_workers=n, batch_size=1).encode_batch(clips) for n in (1, 2)]
    for a, b in zip(*singles, strict=True):
        np.testing.assert_array_equal(a, b)
    # batched LSTM rounding may flip near-ties of the random codebooks, nothing more
    for codes in (one, two):
        first = np.concatenate([a[0] for a in codes]) == np.concatenate([r[0] for r in alone])
        assert np.mean(first) >= 0.9
        assert [a[0, 0] for a in codes[-2:]] == [r[0, 0] for r in alone[-2:]]  # short clips too
    x = torch.from_numpy(make_tone(0.5, SR))[None, None]
    with torch.inference_mode():  # folded weight norm + pointwise convs: the same encoder
        torch.testing.assert_close(inference_copy(codec.model.encoder)(x), codec.model.encoder(x),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="cpu_workers"):
        codec.with_options(cpu_workers=-1)


@pytest.mark.slow
def test_auto_weights_use_the_cache_when_there(codec, init_audio, tmp_path, caplog):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        small = MelCodecConfig(n_mels=20, n_fft=640, codebook_size=16, kmeans_iters=2)
        with caplog.at_level("WARNING"):  # no cached weights: the offline mel codec, said so
            auto = load_codec("auto", init_audio=init_audio, mel=small, kmeans_iters=1)
        assert auto.weights_source == "mel_rvq" and "mel residual-VQ" in caplog.text
        expected_codec_checkpoint().parent.mkdir(parents=True)
        torch.save(codec.model.state_dict(), expected_codec_checkpoint())
        assert load_codec("auto", kmeans_iters=1).weights_source == "pretrained"
    finally:
        torch.hub.set_dir(old)


def test_worker_groups_give_every_thread_work():
    from bark_kedro.tokenizers.codec_encoder import worker_groups

    lengths = [320 * (k % 7 + 1) for k in range(16)]
    groups = worker_groups(lengths, batch_size=16, workers=2)
    assert len(groups) == 4  # 16 pieces fit one batch, but two threads get two groups each
    assert sorted(k for g in groups for k in g) == list(range(16))
    flat = [lengths[k] for g in groups for k in g]
    assert flat == sorted(lengths, reverse=True)  # longest first, similar lengths together
    assert all(len(g) <= 3 for g in worker_groups(lengths, batch_size=3, workers=2))
    assert len(worker_groups(lengths[:1], batch_size=16, workers=2)) == 1
    assert worker_groups([], batch_size=4, workers=2) == []
