"""Progress drawn on the server as inline SVG: percent over successive attempts, no script."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 34, 12, 12, 26


def line_chart(
    *, chart_id: str, title: str, series: Sequence[tuple[str, Sequence[int]]]
) -> SafeString:
    """One line per (name, percents in attempt order) on a 0-100 axis; each point has a tooltip."""
    longest = max((len(values) for _, values in series), default=0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(longest - 1, 1)

    def x(index: int) -> float:
        return LEFT + (index * step if longest > 1 else plot_w / 2)

    def y(value: int) -> float:
        return TOP + plot_h * (1 - max(0, min(100, value)) / 100)

    summary = "; ".join(
        f"{name}: {', '.join(f'{v}%' for v in values)}" for name, values in series if values
    )
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">Percent per attempt, oldest first. '
        f"{escape(summary)}</desc>",
    ]
    for tick in (0, 50, 100):
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(tick):.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{y(tick):.1f}"/><text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick}%</text>'
        )
    for index in range(longest):
        parts.append(
            f'<text x="{x(index):.1f}" y="{HEIGHT - 8}" text-anchor="middle">#{index + 1}</text>'
        )
    for number, (name, values) in enumerate(series):
        css = f"line c{number % 5}" if number else "line"
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        if len(values) > 1:
            parts.append(f'<polyline class="{css}" points="{points}"/>')
        for i, value in enumerate(values):
            parts.append(
                f'<circle class="dot" cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5">'
                f"<title>{escape(name)}, attempt {i + 1}: {value}%</title></circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above
