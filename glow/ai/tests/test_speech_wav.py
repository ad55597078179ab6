"""The WAV layer under speech: what browsers and servers send is read, and what we write is valid."""

import io
import struct
import wave
from array import array

import pytest

from glow.ai.speech import AudioFormatError, Pcm, probe_wav, read_wav, resample, write_wav


def _wav(frames: bytes, *, channels=1, rate=16000, width=2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()


def _float_wav(samples: list[float], *, rate=48000) -> bytes:
    """IEEE float WAV (format 3), as Web Audio recorders write; `wave` cannot read these."""
    data = struct.pack(f"<{len(samples)}f", *samples)
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_written_wav_is_read_back_by_the_standard_library():
    pcm = Pcm(array("h", [0, 1000, -1000, 32767, -32768]), 22050)

    data = write_wav(pcm)

    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() == 5
    assert read_wav(data).samples == pcm.samples


def test_stereo_is_mixed_down_to_mono():
    frames = struct.pack("<4h", 1000, 3000, -2000, 0)

    pcm = read_wav(_wav(frames, channels=2))

    assert list(pcm.samples) == [2000, -1000]
    assert pcm.duration_seconds == pytest.approx(2 / 16000)


def test_eight_and_twenty_four_bit_pcm_become_16_bit():
    eight = read_wav(_wav(bytes([128, 255, 0]), width=1))
    assert list(eight.samples) == [0, 127 << 8, -128 << 8]

    # 24-bit little-endian: 0x123456 keeps its top 16 bits.
    twenty_four = read_wav(_wav(b"\x56\x34\x12" + b"\x00\x00\x80", width=3))
    assert list(twenty_four.samples) == [0x1234, -32768]


def test_float_wav_is_read():
    pcm = read_wav(_float_wav([0.0, 0.5, -1.0, 2.0]))

    assert pcm.rate == 48000
    assert list(pcm.samples) == [0, 16384, -32767, 32767]


def test_a_streamed_wav_with_unknown_sizes_reads_to_the_end():
    data = bytearray(_wav(struct.pack("<3h", 1, 2, 3)))
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"

    assert list(read_wav(bytes(data)).samples) == [1, 2, 3]
    assert probe_wav(bytes(data)).frames == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a WAV"),
        (b"OggS" + bytes(40), "not a WAV"),
        (_wav(b""), "no audio"),
        (_wav(b"\x00" * 8)[:36], "no audio data chunk"),
    ],
)
def test_unreadable_audio_is_refused_with_a_reason(data, message):
    with pytest.raises(AudioFormatError, match=message):
        read_wav(data)


def test_unsupported_encodings_are_refused():
    alaw = bytearray(_wav(b"\x00" * 8))
    alaw[20:22] = (6).to_bytes(2, "little")  # format code 6: A-law

    with pytest.raises(AudioFormatError, match="not supported"):
        read_wav(bytes(alaw))


def test_resampling_keeps_the_duration_and_the_waveform():
    ramp = Pcm(array("h", range(-11025, 11025)), 22050)  # one second, rising steadily

    down = resample(ramp, 16000)

    assert down.rate == 16000
    assert abs(len(down.samples) - 16000) <= 1
    # A straight line stays a straight line: sample i sits at i * 22050/16000 source samples.
    assert down.samples[4000] == pytest.approx(-11025 + 4000 * 22050 / 16000, abs=1)


def test_shrinking_by_three_filters_what_the_new_rate_cannot_carry():
    # The highest tone 48 kHz can hold alternates every sample; at 16 kHz it would alias.
    tone = Pcm(array("h", [10000, -10000] * 24000), 48000)

    down = resample(tone, 16000)

    assert max(abs(sample) for sample in down.samples[10:]) < 4000
