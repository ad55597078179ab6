"""The system family's registry entry: a namespace without rows over the books (seed 003)."""

from __future__ import annotations

from glow.core.registry import Family
from system.api import SystemViewSet

SYSTEM = Family(
    name="system",
    plural="system",
    model=None,
    viewset=SystemViewSet,
    description="The books of every visit: sessions, their generation groups and model runs "
    "(tokens, cost, latency, status), the audit timeline, activity totals and exports.",
)
