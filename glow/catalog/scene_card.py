"""A scene card: the local simulator's stand-in for a generated scene image, drawn as a real PNG.

Pure standard library (zlib + struct): a sky gradient, a sun, a skyline and floor seeded by
the title, and the title in a 5x7 bitmap font. The same title always draws the same card.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

WIDTH, HEIGHT = 640, 360
MIME_TYPE = "image/png"

_FONT_ROWS = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "'": "00100 00100 01000 00000 00000 00000 00000",
    "!": "00100 00100 00100 00100 00100 00000 00100",
    "?": "01110 10001 00001 00010 00100 00000 00100",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "&": "01100 10010 10100 01000 10101 10010 01101",
    " ": "00000 00000 00000 00000 00000 00000 00000",
}
FONT = {char: rows.split() for char, rows in _FONT_ROWS.items()}

# (sky top, sky bottom, ground) per mood: dawn, day, late afternoon, dusk, night.
PALETTES = (
    ((255, 183, 148), (255, 229, 180), (120, 94, 72)),
    ((92, 160, 230), (190, 225, 250), (96, 128, 80)),
    ((238, 150, 80), (252, 214, 140), (110, 84, 60)),
    ((72, 60, 130), (220, 120, 120), (60, 52, 70)),
    ((16, 24, 60), (50, 70, 120), (30, 34, 44)),
)
MOODS = {
    "dawn": 0,
    "morning": 0,
    "day": 1,
    "bright": 1,
    "afternoon": 2,
    "sunset": 3,
    "evening": 3,
    "dusk": 3,
    "night": 4,
}


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(width * 3) for _ in range(height)]

    def fill_row(self, y: int, x0: int, x1: int, color: tuple[int, int, int]) -> None:
        if 0 <= y < self.height:
            x0, x1 = max(x0, 0), min(x1, self.width)
            if x1 > x0:
                self.rows[y][x0 * 3 : x1 * 3] = bytes(color) * (x1 - x0)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        for y in range(max(y0, 0), min(y1, self.height)):
            self.fill_row(y, x0, x1, color)

    def disc(self, cx: int, cy: int, radius: int, color) -> None:
        for dy in range(-radius, radius + 1):
            half = int((radius * radius - dy * dy) ** 0.5)
            self.fill_row(cy + dy, cx - half, cx + half + 1, color)

    def text(self, x: int, y: int, text: str, scale: int, color) -> None:
        for char in text:
            glyph = FONT.get(char.upper(), FONT["?"])
            for row_index, row in enumerate(glyph):
                for col_index, bit in enumerate(row):
                    if bit == "1":
                        px, py = x + col_index * scale, y + row_index * scale
                        self.rect(px, py, px + scale, py + scale, color)
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if len(candidate) <= width:
            line = candidate
        else:
            if line:
                lines.append(line)
            line = word[:width]
    if line:
        lines.append(line)
    return lines


def scene_card_png(*, title: str, caption: str = "") -> bytes:
    """Draw the card for a scene called `title` (mood words in the caption pick the light)."""
    seed = int.from_bytes(hashlib.sha256(f"{title}\n{caption}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    words = f"{title} {caption}".lower()
    mood = next((index for word, index in MOODS.items() if word in words), rng.randrange(3))
    sky_top, sky_bottom, ground = PALETTES[mood]
    canvas = Canvas(WIDTH, HEIGHT)
    horizon = int(HEIGHT * 0.62)
    for y in range(horizon):
        canvas.fill_row(y, 0, WIDTH, _mix(sky_top, sky_bottom, y / horizon))
    canvas.disc(rng.randrange(80, WIDTH - 80), rng.randrange(40, horizon // 2), 34, (255, 240, 200))
    for _ in range(rng.randrange(5, 9)):  # a skyline: the building the scene happens in
        left = rng.randrange(0, WIDTH - 60)
        top = horizon - rng.randrange(40, 150)
        shade = _mix(ground, (40, 40, 50), rng.random() * 0.6)
        canvas.rect(left, top, left + rng.randrange(50, 130), horizon, shade)
    for y in range(horizon, HEIGHT):
        canvas.fill_row(y, 0, WIDTH, _mix(ground, (20, 20, 24), (y - horizon) / (HEIGHT - horizon)))
    panel_top = HEIGHT - 96
    canvas.rect(0, panel_top, WIDTH, HEIGHT, (24, 24, 32))
    lines = _wrap(title, 24)[:2] or ["Scene"]
    for index, line in enumerate(lines):
        canvas.text(20, panel_top + 12 + index * 34, line, 4, (250, 250, 250))
    if caption and len(lines) == 1:
        canvas.text(20, panel_top + 56, _wrap(caption, 50)[0], 2, (200, 200, 210))
    return canvas.png()
