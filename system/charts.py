"""Bar charts drawn on the server as inline SVG: no script, readable by screen readers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 160
TOP, BOTTOM, LEFT = 16, 22, 4


def bar_chart(
    *,
    chart_id: str,
    title: str,
    points: Sequence[tuple[str, int | Decimal]],
    label: Callable[[int | Decimal], str] = str,
) -> SafeString:
    """One bar per point (label, value); each bar carries its exact figure as a tooltip."""
    peak = max((value for _, value in points), default=0) or 1
    count = max(len(points), 1)
    slot = (WIDTH - LEFT) / count
    bar = max(slot * 0.8, 1)
    plot = HEIGHT - TOP - BOTTOM
    total = sum((value for _, value in points), 0)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(title)}: {escape(label(total))} in '
        f"{len(points)} days; the highest day {escape(label(peak if points else 0))}.</desc>",
        f'<line class="axis" x1="0" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}"/>',
    ]
    for index, (name, value) in enumerate(points):
        height = float(value) / float(peak) * plot
        x = LEFT + index * slot + (slot - bar) / 2
        y = HEIGHT - BOTTOM - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}">'
            f"<title>{escape(name)}: {escape(label(value))}</title></rect>"
        )
    if points:
        parts.append(
            f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(points[0][0])}</text>'
            f'<text class="tick" x="{WIDTH - LEFT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    parts.append(
        f'<text class="tick" x="{LEFT}" y="{TOP - 4}">max {escape(label(peak if points else 0))}</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated value above is escaped
