"""The `local` speech provider: pocketsphinx's bundled US English model listens, eSpeak NG speaks.

Both engines ship inside their PyPI wheels (pocketsphinx; espeakng-loader bundles libespeak-ng
and its data), so nothing is downloaded at run time.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from array import array
from collections.abc import Callable
from typing import Any, TypeVar

from glow.ai.base import ProviderError
from glow.ai.speech.base import Speech, Transcription, Word, check_synthesis
from glow.ai.speech.wav import AudioFormatError, Pcm, read_wav, resample, write_wav

# Of eSpeak's English voices, the Klatt variant is the one pocketsphinx's acoustic model hears
# best, so the local pair can understand its own speech (what tests and demos rely on).
DEFAULT_VOICE = "en-us+klatt4"
WORDS_PER_MINUTE = 160
SPHINX_RATE = 16_000
# Below 1% of full scale (-40 dBFS) nobody spoke: pocketsphinx would still "hear" a word in it.
SILENCE_PEAK = 328
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_RATE = 1
_EE_OK = 0
_RATE_MIN, _RATE_MAX = 80, 450
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# "read(2)" is the dictionary's second pronunciation of "read".
_ALTERNATE = re.compile(r"\(\d+\)$")

T = TypeVar("T")


class _Espeak:
    """libespeak-ng in synchronous mode; it keeps global state, so every use holds _speak_lock."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise ProviderError("Local text-to-speech needs the espeakng-loader package.") from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            # The directory holding espeak-ng-data, as speak_lib.h asks.
            os.path.dirname(espeakng_loader.get_data_path()).encode(),
            _INITIALIZE_DONT_EXIT,
        )
        if self.rate <= 0:
            raise ProviderError("eSpeak NG could not start: its voice data was not found.")
        self._lib = lib
        self._chunks: list[bytes] = []
        # The library keeps only a raw pointer: this reference keeps the callback alive.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # go on synthesising

    def speak(self, text: str, *, voice: str, words_per_minute: int) -> Pcm:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ProviderError(f"There is no local voice called {voice!r}.")
        self._lib.espeak_SetParameter(_RATE, words_per_minute, 0)
        self._chunks = []
        encoded = text.encode() + b"\0"
        status = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        if status != _EE_OK or self._lib.espeak_Synchronize() != _EE_OK:
            raise ProviderError(f"eSpeak NG failed to synthesise the text (error {status}).")
        # The callback hands over native-endian shorts, which is what array("h") holds.
        samples = array("h")
        samples.frombytes(b"".join(self._chunks))
        self._chunks = []
        return Pcm(samples, self.rate)


class _Sphinx:
    """One pocketsphinx decoder with the wheel's en-us model; decoders are not thread-safe."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise ProviderError("Local speech-to-text needs the pocketsphinx package.") from exc
        self._decoder = Decoder(samprate=SPHINX_RATE, loglevel="FATAL")
        self._frames_per_second = int(self._decoder.config["frate"])

    def hear(self, pcm: Pcm) -> tuple[str, list[Word]]:
        decoder = self._decoder
        try:
            decoder.start_utt()
            decoder.process_raw(pcm.samples.tobytes(), full_utt=True)
            decoder.end_utt()
        except RuntimeError as exc:
            raise ProviderError(f"pocketsphinx could not decode the audio: {exc}") from exc
        words = [
            Word(
                text=_ALTERNATE.sub("", segment.word),
                start_seconds=segment.start_frame / self._frames_per_second,
                end_seconds=(segment.end_frame + 1) / self._frames_per_second,
            )
            for segment in decoder.seg()
            # Fillers: <s>, </s>, <sil>, [NOISE]...
            if not segment.word.startswith(("<", "["))
        ]
        return " ".join(word.text for word in words), words


_speak_lock = threading.Lock()
_hear_lock = threading.Lock()
_engines: dict[type, Any] = {}


def _engine(kind: Callable[[], T]) -> T:
    """The process's one instance of an engine, built on first use; callers hold its lock."""
    if kind not in _engines:
        _engines[kind] = kind()
    return _engines[kind]


class LocalSpeechProvider:
    name = "local"

    def transcribe(
        self, audio: bytes, *, mime_type: str = "audio/wav", language: str = "en", model: str = ""
    ) -> Transcription:
        media_type = mime_type.split(";")[0].strip().lower()
        if media_type not in WAV_TYPES:
            raise AudioFormatError(f"Local speech-to-text reads WAV audio only, not {mime_type}.")
        if language and re.split(r"[-_]", language.lower())[0] != "en":
            raise ProviderError(f"Local speech-to-text understands English only, not {language!r}.")
        pcm = read_wav(audio)
        if (
            max(pcm.samples, default=0) < SILENCE_PEAK
            and -min(pcm.samples, default=0) < SILENCE_PEAK
        ):
            return Transcription(text="", usage_seconds=pcm.duration_seconds, words=[])
        heard = resample(pcm, SPHINX_RATE)
        with _hear_lock:
            text, words = _engine(_Sphinx).hear(heard)
        return Transcription(text=text, usage_seconds=pcm.duration_seconds, words=words)

    def synthesize(
        self, text: str, *, voice: str = "", speed: float | None = None, model: str = ""
    ) -> Speech:
        spoken = check_synthesis(text, speed)
        words_per_minute = round(WORDS_PER_MINUTE * (speed or 1.0))
        words_per_minute = max(_RATE_MIN, min(_RATE_MAX, words_per_minute))
        with _speak_lock:
            pcm = _engine(_Espeak).speak(
                spoken, voice=voice or DEFAULT_VOICE, words_per_minute=words_per_minute
            )
        if not pcm.samples:
            raise ProviderError("eSpeak NG produced no audio for the text.")
        return Speech(audio=write_wav(pcm), duration_seconds=pcm.duration_seconds)
