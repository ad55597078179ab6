"""Primary keys for rows written by the thousand: UUIDs that sort by creation time (UUIDv7).

A random UUID (v4) puts each new row's index entry on a random page of the primary-key B-tree:
at a grid's thousands of runs a second nearly every insert dirties another page, and the first
change of a page after a checkpoint writes the whole page to the WAL. Time-ordered UUIDs append
at the index's right edge. RFC 9562 layout: 48 bits of Unix milliseconds, version 7, 12 bits
that keep ids made in the same millisecond in order, the variant, 62 random bits.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def uuid7() -> uuid.UUID:
    global _last_ms, _sequence
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _sequence = now, int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:  # the same millisecond (or the clock stepped back): count on from the last id
            _sequence += 1
            if _sequence > 0xFFF:
                _last_ms, _sequence = _last_ms + 1, 0
        ms, sequence = _last_ms, _sequence
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76 | sequence << 64
    value |= 0b10 << 62 | int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)
