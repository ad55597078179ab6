"""The one set of filters for numbers people read: money, counts, percents, durations, dates, JSON.

`{% load glow_format %}` then `{{ run.cost|money }}`, `{{ n|count }}`, `{{ at|when }}`,
`{{ seconds|duration }}`, `{{ payload|raw_json }}`. Empty values read "—".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

register = template.Library()

DASH = "—"
CENT = Decimal("0.01")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


@register.filter
def money(value) -> str:
    """Dollars to the cent with thousands separators; below a cent, four significant figures
    (a model call often costs $0.0001234, which "to the cent" would show as $0.00)."""
    amount = _decimal(value)
    if amount is None:
        return DASH
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if 0 < amount < CENT:
        digits = f"{float(amount):.4g}"
        if "e" in digits:  # .4g switches to exponent form below 1e-4
            places = -amount.adjusted() + 3
            digits = f"{amount:.{places}f}".rstrip("0")
        return f"{sign}${digits}"
    return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"


@register.filter
def count(value) -> str:
    """An integer with thousands separators."""
    if value is None or value == "":
        return DASH
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def percent(value) -> str:
    amount = _decimal(value)
    if amount is None:
        return DASH
    return f"{amount.quantize(Decimal('1') if amount == amount.to_integral() else Decimal('0.1'))}%"


@register.filter
def duration(seconds) -> str:
    """Seconds as "1 h 05 min", "12 min 30 s" or "45 s"."""
    if seconds is None or seconds == "":
        return DASH
    seconds = round(float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def relative(value: datetime, now: datetime | None = None) -> str:
    now = now or timezone.now()
    delta = (now - value).total_seconds()
    if abs(delta) < 60:
        return "just now"
    if delta > 0:
        return f"{timesince(value, now, depth=1)} ago"
    return f"in {timeuntil(value, now, depth=1)}"


@register.filter
def when(value) -> str:
    """A date both ways: "3 hours ago" with the absolute UTC time beside it (and as the
    machine-readable datetime), so neither has to be guessed."""
    if not value:
        return DASH
    if not isinstance(value, datetime):
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), value.isoformat())
    absolute = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return format_html(
        '<time datetime="{}" title="{}">{} <span class="abs">({})</span></time>',
        value.isoformat(),
        absolute,
        relative(value),
        absolute,
    )


@register.filter
def raw_json(value) -> str:
    """JSON folded behind a "Show raw" toggle: readable pages, with nothing hidden for good."""
    if value in (None, "", [], {}):
        return DASH
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return format_html(
        '<details class="raw"><summary>Show raw</summary><pre>{}</pre></details>', text
    )


@register.filter
def day(value) -> str:
    """The date alone, as people write it: 4 Dec 2026."""
    if not value:
        return DASH
    if not isinstance(value, datetime):
        return str(value)
    return timezone.localtime(value).strftime("%-d %b %Y")
