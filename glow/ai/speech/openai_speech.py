"""The `openai` speech provider: OpenAI-compatible `audio/transcriptions` and `audio/speech`."""

from __future__ import annotations

import re
from typing import Any

from glow.ai.base import ProviderError, Usage
from glow.ai.openai_provider import OpenAIProvider
from glow.ai.speech.base import Speech, Transcription, check_synthesis
from glow.ai.speech.wav import AudioFormatError, probe_wav, read_wav, write_wav

DEFAULT_TRANSCRIPTION_MODEL = "whisper-1"
DEFAULT_SPEECH_MODEL = "tts-1"
DEFAULT_VOICE = "alloy"
_EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/flac": "flac",
}


class OpenAISpeechProvider:
    name = "openai"

    def __init__(
        self,
        *,
        transcription_model: str = DEFAULT_TRANSCRIPTION_MODEL,
        speech_model: str = DEFAULT_SPEECH_MODEL,
        **connection: Any,
    ) -> None:
        """`connection`: OpenAIProvider's own keywords (base_url, api_key, timeout, retries)."""
        # The chat provider owns the configured client and the bounded retries with their error
        # translation; speech shares both so a speech Run fails exactly like a chat Run.
        self._http = OpenAIProvider(**connection)
        self.transcription_model = transcription_model
        self.speech_model = speech_model

    def transcribe(
        self, audio: bytes, *, mime_type: str = "audio/wav", language: str = "en", model: str = ""
    ) -> Transcription:
        if not audio:
            raise AudioFormatError("There is no audio to transcribe.")
        media_type = mime_type.split(";")[0].strip().lower()
        upload = (f"audio.{_EXTENSIONS.get(media_type, 'bin')}", audio, media_type)
        options: dict[str, Any] = {
            "model": model or self.transcription_model,
            "file": upload,
            "response_format": "json",
        }
        if language:
            # Whisper-style servers take ISO-639-1 codes: "en", not "en-US".
            options["language"] = re.split(r"[-_]", language.lower())[0]
        client = self._http._client
        response = self._http._with_retries(lambda: client.audio.transcriptions.create(**options))
        seconds, usage = _reported_usage(getattr(response, "usage", None))
        if seconds is None:
            seconds = _wav_seconds(audio) if media_type.endswith(("wav", "wave")) else 0.0
        return Transcription(text=(response.text or "").strip(), usage_seconds=seconds, usage=usage)

    def synthesize(
        self, text: str, *, voice: str = "", speed: float | None = None, model: str = ""
    ) -> Speech:
        options: dict[str, Any] = {
            "model": model or self.speech_model,
            "input": check_synthesis(text, speed),
            "voice": voice or DEFAULT_VOICE,
            "response_format": "wav",
        }
        if speed is not None:
            options["speed"] = speed
        client = self._http._client
        response = self._http._with_retries(lambda: client.audio.speech.create(**options))
        try:
            pcm = read_wav(response.content)
        except AudioFormatError as exc:
            raise ProviderError(f"The speech server did not answer with usable WAV audio: {exc}")
        # Rewritten so the header's sizes are right: a streamed WAV leaves them unknown.
        return Speech(audio=write_wav(pcm), duration_seconds=pcm.duration_seconds)


def _reported_usage(reported: Any) -> tuple[float | None, Usage]:
    """Seconds (when billed by duration) and tokens (when billed by tokens) the server reports."""
    if reported is None:
        return None, Usage()
    if getattr(reported, "type", None) == "duration":
        return float(reported.seconds or 0.0), Usage()
    return None, Usage(
        int(getattr(reported, "input_tokens", 0) or 0),
        int(getattr(reported, "output_tokens", 0) or 0),
    )


def _wav_seconds(audio: bytes) -> float:
    try:
        return probe_wav(audio).duration_seconds
    except AudioFormatError:
        # The server accepted it; only our duration estimate is lost.
        return 0.0
