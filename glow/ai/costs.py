"""Exact dollar cost of a model call from per-million-token prices."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from glow.ai.base import Usage

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.000001")


def _as_decimal(price: Decimal | int | str) -> Decimal:
    # Floats would smuggle binary rounding errors into money.
    if isinstance(price, float):
        raise TypeError("prices must be Decimal, int or str, not float")
    return Decimal(price)


def cost_for(
    usage: Usage,
    *,
    input_price_per_million: Decimal,
    output_price_per_million: Decimal,
) -> Decimal:
    raw = (
        usage.input_tokens * _as_decimal(input_price_per_million)
        + usage.output_tokens * _as_decimal(output_price_per_million)
    ) / _MILLION
    return raw.quantize(_QUANTUM, rounding=ROUND_HALF_UP)
