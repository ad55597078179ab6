"""Numbers people read, formatted one way everywhere: durations, percents, dates."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """1 h 04 min, 12 min 30 s, 45 s; blank for nothing recorded."""
    if seconds is None or seconds == "":
        return "—"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if minutes < 10 and secs else f"{minutes} min"
    return f"{secs} s"


@register.filter
def pct(value) -> str:
    """A whole percent, or a dash when there is none yet."""
    if value is None or value == "":
        return "—"
    return f"{round(float(value))}%"


@register.filter
def when(value: datetime | None):
    """A <time> element: relative words ("3 days ago"), the exact date and time on hover."""
    if not value:
        return "—"
    now = timezone.now()
    local = timezone.localtime(value)
    exact = local.strftime("%-d %b %Y, %H:%M")
    if abs((now - value).total_seconds()) < 60:
        words = "just now"
    elif value <= now:
        words = f"{timesince(value, now, depth=1)} ago"
    else:
        words = f"in {timeuntil(value, now, depth=1)}"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, words)


@register.filter
def day(value: datetime | None) -> str:
    """The date alone, as people write it: 4 Dec 2026."""
    if not value:
        return "—"
    return timezone.localtime(value).strftime("%-d %b %Y")
