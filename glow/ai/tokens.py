"""A small offline tokenizer whose counts approximate BPE tokenizers on English text."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import lru_cache

# ASCII words split into ~8-letter pieces, digits into groups of three and other
# scripts per character: roughly how cl100k-style BPE vocabularies behave.
_PIECE = re.compile(r"[A-Za-z]+|\d{1,3}|[^\W\d_]|[^\w\s]+|_+")
_LETTERS_PER_TOKEN = 8


def _piece_tokens(piece: str) -> int:
    if piece.isascii() and piece.isalpha():
        return math.ceil(len(piece) / _LETTERS_PER_TOKEN)
    return 1


def token_boundaries(text: str) -> Iterator[tuple[int, int]]:
    """Yield (end offset, running token count) after each piece of `text`."""
    count = 0
    for match in _PIECE.finditer(text):
        count += _piece_tokens(match.group())
        yield match.end(), count


# An ASCII word is always a whole piece (the first alternative takes the longest run), so a
# count is the number of pieces plus what words longer than one token add: the same sum as
# token_boundaries', in C rather than a Python call per piece.
_LONG_WORD = re.compile(rf"[A-Za-z]{{{_LETTERS_PER_TOKEN + 1},}}")


@lru_cache(maxsize=1024)  # prompts repeat (an agent's system prompt, a transcript's lines)
def count_tokens(text: str) -> int:
    extra = sum((len(word) - 1) // _LETTERS_PER_TOKEN for word in _LONG_WORD.findall(text))
    return len(_PIECE.findall(text)) + extra


def truncate_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text` holding at most `limit` tokens, whole pieces only."""
    end = 0
    for offset, count in token_boundaries(text):
        if count > limit:
            break
        end = offset
    return text[:end]
