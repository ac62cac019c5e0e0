import numpy as np
import pytest

from bark_kedro.audio import espeak

SHORT = "Good morning."
LONG = "Good morning, everyone. The weather today will be cold and windy near the coast."


def _f0(audio: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (Hz) over loud 40 ms frames."""
    frame, estimates = int(0.04 * sr), []
    lo, hi = int(sr / 400), int(sr / 60)
    for start in range(0, len(audio) - frame, frame):
        x = audio[start : start + frame]
        if np.sqrt(np.mean(x**2)) < 0.05:
            continue
        x = x - x.mean()
        corr = np.correlate(x, x, "full")[frame - 1 :]
        estimates.append(sr / (lo + np.argmax(corr[lo:hi])))
    return float(np.median(estimates))


def test_synthesize_returns_audible_finite_float_audio():
    audio, sr = espeak.synthesize(SHORT)
    assert sr == 22050 == espeak.sample_rate()
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert 0.3 < len(audio) / sr < 5.0


def test_duration_grows_with_text_and_shrinks_with_rate():
    short, _ = espeak.synthesize(SHORT)
    long, _ = espeak.synthesize(LONG)
    assert len(long) > 2 * len(short)
    slow, _ = espeak.synthesize(LONG, rate_wpm=120)
    fast, _ = espeak.synthesize(LONG, rate_wpm=300)
    assert len(slow) > 1.5 * len(fast)


def test_same_arguments_give_identical_samples_whatever_came_before():
    first, _ = espeak.synthesize(LONG, "en-us+m3", 170, 45)
    espeak.synthesize("Something else entirely.", "en+f2", 320, 90)
    second, _ = espeak.synthesize(LONG, "en-us+m3", 170, 45)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("voice", ["en-us+m3", "en+f2", "en-us+f5"])
def test_variants_exist_and_synthesize(voice):
    assert voice.split("+")[1] in espeak.list_variants()
    audio, _ = espeak.synthesize(SHORT, voice)
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_voices_and_pitch_change_the_voice():
    male, sr = espeak.synthesize(LONG, "en-us+m3")
    female, _ = espeak.synthesize(LONG, "en-us+f2")
    assert not np.array_equal(male[: len(female)], female[: len(male)])
    assert _f0(female, sr) > 1.5 * _f0(male, sr)
    low, _ = espeak.synthesize(LONG, "en-us", pitch=20)
    high, _ = espeak.synthesize(LONG, "en-us", pitch=80)
    assert _f0(high, sr) > 1.3 * _f0(low, sr)


def test_list_voices_names_are_accepted():
    voices = espeak.list_voices()
    assert {"en", "en-us"} <= set(voices)
    assert espeak.phonemize("yes", voices[voices.index("en-us")])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": "   "}, "empty"),
        ({"text": "hi", "voice": "en-us+nosuchvariant"}, "variant"),
        ({"text": "hi", "voice": "xx-nosuchvoice"}, "unknown"),
        ({"text": "hi", "rate_wpm": 5}, "rate_wpm"),
        ({"text": "hi", "pitch": 101}, "pitch"),
    ],
)
def test_synthesize_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        espeak.synthesize(**kwargs)


def test_synthesize_rejects_non_text():
    with pytest.raises(TypeError, match="text"):
        espeak.synthesize(b"bytes")


def test_phonemize_returns_ipa_deterministically():
    text = "The thin cat sat on the warm mat."
    ipa = espeak.phonemize(text)
    assert ipa and not ipa.isascii()
    assert {"θ", "æ", "ˈ"} <= set(ipa)
    assert ipa == ipa.strip() and "  " not in ipa
    assert len(ipa.split()) >= 5  # words are space separated (eSpeak joins some short words)
    espeak.phonemize("Bonjour tout le monde", "fr")
    assert espeak.phonemize(text) == ipa


def test_phonemize_reads_every_clause():
    first, second = espeak.phonemize("Hello there."), espeak.phonemize("Goodbye now.")
    both = espeak.phonemize("Hello there. Goodbye now.")
    assert both == f"{first} {second}"


def test_phonemize_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        espeak.phonemize("")
    with pytest.raises(ValueError, match="voice"):
        espeak.phonemize("hello", "xx-nosuchvoice")
