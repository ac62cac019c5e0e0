"""A small ctypes binding to eSpeak NG, as shipped by the ``espeakng-loader`` wheel.

No maintained PyPI package synthesises audio through this library without a subprocess
(``phonemizer`` only phonemizes; ``espeakng`` shells out to an ``espeak-ng`` binary), so
this module binds the handful of C functions it needs. eSpeak keeps global state, so
every call holds a module-level lock (see ``_private_copy`` for how synthesis is kept
repeatable).
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from functools import cache
from pathlib import Path

import espeakng_loader
import numpy as np

# Constants from eSpeak NG's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02
_RATE, _PITCH = 1, 3
_EE_OK = 0

#: Seed given to eSpeak's noise generator before every utterance, so output is repeatable.
RAND_SEED = 0
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Library:
    """One loaded and initialised copy of libespeak-ng, with a callback collecting samples."""

    def __init__(self, lib_path: str) -> None:
        data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as err:
            raise RuntimeError(f"cannot load the eSpeak NG library {lib_path!r}: {err}") from err
        _declare(lib)
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            _ctypes.dlclose(lib._handle)
            raise RuntimeError(
                f"eSpeak NG failed to initialise (code {rate}) with data path {data_path!r}"
            )
        self.lib = lib
        self.sample_rate = int(rate)
        self.data_path = Path(data_path)
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # must outlive the library's use of it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, _events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = go on synthesising

    def set_voice(self, voice: str) -> None:
        _check_voice(voice, self.data_path)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"voice {voice!r} is unknown to eSpeak NG; see list_voices()")

    def synth(self, text: str) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        self.lib.espeak_ng_SetRandSeed(RAND_SEED)
        err = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        chunks, self._chunks = self._chunks, []
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {err} for text {text!r}")
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def close(self) -> None:
        """Free eSpeak's memory and unload this copy, so the next load starts afresh."""
        self.lib.espeak_Terminate()
        handle = self.lib._handle
        del self.lib
        _ctypes.dlclose(handle)


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_Terminate.restype = ctypes.c_int


# eSpeak keeps global state, some of it (pitch flutter, gain control) in function-level
# statics that espeak_Initialize does not reset. Synthesis therefore loads a private copy
# of the library for each utterance and unloads it afterwards (~5 ms), so the same
# arguments always give the same samples; a second private copy stays loaded for
# phonemes and voice lists. Private copies (as phonemizer does) keep other users of
# the wheel's library from sharing, or being disturbed by, this module's state.
_LOCK = threading.RLock()


def _private_copy(role: str) -> str:
    return _copy_library(role, os.getpid())  # a forked child makes (and removes) its own


@cache
def _copy_library(role: str, pid: int) -> str:
    folder = tempfile.mkdtemp(prefix=f"bark_kedro_espeak_{role}_")
    atexit.register(_remove_copy, folder, pid)
    source = espeakng_loader.get_library_path()
    target = os.path.join(folder, os.path.basename(source))
    shutil.copyfile(source, target)
    return target


def _remove_copy(folder: str, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


@cache
def _engine() -> _Library:
    return _Library(_private_copy("text"))


def _check_voice(voice: str, data_path: Path) -> None:
    if not isinstance(voice, str) or not voice.strip():
        raise ValueError(f"voice must be a non-empty string, got {voice!r}")
    if "+" in voice:
        variant = voice.split("+", 1)[1]
        if not (data_path / "voices" / "!v" / variant).is_file():
            raise ValueError(f"voice {voice!r}: unknown variant {variant!r}; see list_variants()")


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("text is empty")


def sample_rate() -> int:
    """eSpeak NG's native output sample rate in Hz (22050 for the bundled voices)."""
    with _LOCK:
        return _engine().sample_rate


def version() -> str:
    """Version string of the loaded eSpeak NG library."""
    with _LOCK:
        return _engine().lib.espeak_Info(None).decode()


def synthesize(
    text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG.

    ``voice`` is a language/voice name optionally followed by ``+variant``
    (e.g. ``"en-us+m3"``, ``"en+f2"``); ``rate_wpm`` is in words per minute (80-450)
    and ``pitch`` is eSpeak's base pitch (0-100, 50 = the voice's default).
    Returns float32 mono samples in [-1, 1] and the sample rate. The same arguments
    always give the same samples.
    """
    _check_text(text)
    if not RATE_RANGE[0] <= int(rate_wpm) <= RATE_RANGE[1]:
        raise ValueError(f"rate_wpm must be in {RATE_RANGE}, got {rate_wpm}")
    if not PITCH_RANGE[0] <= int(pitch) <= PITCH_RANGE[1]:
        raise ValueError(f"pitch must be in {PITCH_RANGE}, got {pitch}")
    with _LOCK:
        _check_voice(voice, _engine().data_path)
        engine = _Library(_private_copy("synth"))
        try:
            engine.set_voice(voice)
            engine.lib.espeak_SetParameter(_RATE, int(rate_wpm), 0)
            engine.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            pcm = engine.synth(text)
        finally:
            engine.close()
    return pcm.astype(np.float32) / 32768.0, engine.sample_rate


def phonemize(text: str, voice: str = "en-us") -> str:
    """IPA transcription of ``text`` by eSpeak NG, words separated by single spaces.

    Stress marks (ˈ ˌ) and length marks (ː) are kept; punctuation is dropped, and
    clauses are joined by a space.
    """
    _check_text(text)
    clauses = []
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        buffer = ctypes.c_char_p(text.encode("utf-8"))
        pointer = ctypes.pointer(buffer)
        while pointer.contents.value:
            before = ctypes.cast(buffer, ctypes.c_void_p).value
            out = engine.lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, _PHONEMES_IPA)
            if out:
                clauses.append(out.decode("utf-8").strip())
            if ctypes.cast(buffer, ctypes.c_void_p).value == before:  # no progress: stop
                break
    return " ".join(" ".join(c for c in clauses if c).split())


def list_voices() -> list[str]:
    """Voice names accepted by ``synthesize``/``phonemize`` (e.g. ``"en-us"``, ``"en"``)."""
    names = set()
    with _LOCK:
        voices = _engine().lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            identifier = voices[i].contents.identifier  # e.g. b"gmw/en-US"
            if identifier:
                names.add(identifier.decode().rsplit("/", 1)[-1].lower())
            i += 1
    return sorted(names)


def list_variants() -> list[str]:
    """Voice variants that may follow ``+`` in a voice name (e.g. ``m3``, ``f2``)."""
    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())
