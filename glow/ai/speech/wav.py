"""WAV in and out without numpy: a tolerant RIFF reader, a writer, and a small resampler."""

from __future__ import annotations

import io
import sys
import wave
from array import array
from dataclasses import dataclass

from glow.ai.base import ProviderError

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# A streamed WAV (OpenAI's speech endpoint writes one) cannot know its length up front.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
_LITTLE_ENDIAN_HOST = sys.byteorder == "little"


class AudioFormatError(ProviderError):
    """The audio is not a WAV file that can be read: a problem with the input, not the server."""


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says, with the data chunk located."""

    format_code: int
    channels: int
    rate: int
    bits: int
    data_start: int
    data_end: int

    @property
    def block_align(self) -> int:
        return self.channels * (self.bits // 8)

    @property
    def frames(self) -> int:
        return (self.data_end - self.data_start) // self.block_align

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.rate


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit signed samples at `rate` Hz."""

    samples: array
    rate: int

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def probe_wav(data: bytes) -> WavInfo:
    """The header of a PCM or float WAV; raises AudioFormatError for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("The audio is not a WAV file (no RIFF/WAVE header).")
    fmt: tuple[int, int, int, int] | None = None
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        start = position + 8
        if chunk_id == b"fmt " and size >= 16:
            fmt = _parse_fmt(data[start : start + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("The WAV file has its data before its format chunk.")
            end = len(data) if size in _UNKNOWN_SIZES else min(len(data), start + size)
            info = WavInfo(*fmt, data_start=start, data_end=end)
            if info.frames == 0:
                raise AudioFormatError("The WAV file holds no audio.")
            return info
        position = start + size + (size & 1)
    raise AudioFormatError("The WAV file has no audio data chunk.")


def _parse_fmt(chunk: bytes) -> tuple[int, int, int, int]:
    code = int.from_bytes(chunk[0:2], "little")
    channels = int.from_bytes(chunk[2:4], "little")
    rate = int.from_bytes(chunk[4:8], "little")
    bits = int.from_bytes(chunk[14:16], "little")
    if code == _EXTENSIBLE and len(chunk) >= 26:
        # The sub-format GUID starts with the plain format code.
        code = int.from_bytes(chunk[24:26], "little")
    supported = (code == _PCM and bits in (8, 16, 24, 32)) or (code == _FLOAT and bits in (32, 64))
    if not supported:
        raise AudioFormatError(
            f"WAV format {code:#06x} with {bits}-bit samples is not supported; "
            "send PCM (8, 16, 24 or 32-bit) or 32/64-bit float."
        )
    if not 1 <= channels <= 16 or not 1000 <= rate <= 384_000:
        raise AudioFormatError(f"The WAV file claims {channels} channels at {rate} Hz.")
    return code, channels, rate, bits


def read_wav(data: bytes) -> Pcm:
    """Any supported WAV as mono 16-bit samples (channels averaged)."""
    info = probe_wav(data)
    body = data[info.data_start : info.data_start + info.frames * info.block_align]
    interleaved = _as_int16(body, info)
    if info.channels == 1:
        return Pcm(interleaved, info.rate)
    channels = [interleaved[c :: info.channels] for c in range(info.channels)]
    mono = array("h", (sum(frame) // info.channels for frame in zip(*channels, strict=True)))
    return Pcm(mono, info.rate)


def _as_int16(body: bytes, info: WavInfo) -> array:
    if info.format_code == _FLOAT:
        floats = _native(array("f" if info.bits == 32 else "d"), body)
        return array("h", (max(-32768, min(32767, round(x * 32767))) for x in floats))
    if info.bits == 16:
        return _native(array("h"), body)
    if info.bits == 8:
        # 8-bit WAV is unsigned with 128 as silence.
        return array("h", ((byte - 128) << 8 for byte in body))
    if info.bits == 32:
        return array("h", (x >> 16 for x in _native(array("i"), body)))
    return array(
        "h",
        (
            int.from_bytes(body[i + 1 : i + 3], "little", signed=True)
            for i in range(0, len(body), 3)
        ),
    )


def _native(buffer: array, body: bytes) -> array:
    buffer.frombytes(body[: len(body) - len(body) % buffer.itemsize])
    if not _LITTLE_ENDIAN_HOST:
        buffer.byteswap()
    return buffer


def write_wav(pcm: Pcm) -> bytes:
    """A canonical mono 16-bit PCM WAV with correct sizes in its header."""
    samples = pcm.samples
    if not _LITTLE_ENDIAN_HOST:
        samples = array("h", samples)
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(pcm.rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Linear interpolation to `rate`; when shrinking by 2x or more, a moving average first
    keeps the frequencies the new rate cannot carry from folding back as noise."""
    if pcm.rate == rate or not pcm.samples:
        return Pcm(pcm.samples, rate)
    source = pcm.samples
    window = pcm.rate // rate
    if window >= 2:
        source = _moving_average(source, window)
    step = pcm.rate / rate
    count = int(len(source) / step)
    last = len(source) - 1
    out = array("h", bytes(2 * count))
    for index in range(count):
        position = index * step
        left = int(position)
        right = left + 1 if left < last else last
        fraction = position - left
        out[index] = round(source[left] + (source[right] - source[left]) * fraction)
    return Pcm(out, rate)


def _moving_average(samples: array, window: int) -> array:
    out = array("h", bytes(2 * len(samples)))
    total = 0
    for index, sample in enumerate(samples):
        total += sample
        if index >= window:
            total -= samples[index - window]
        out[index] = total // min(index + 1, window)
    return out
