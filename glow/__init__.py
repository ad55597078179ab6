"""Glow: practise hard conversations against AI-simulated people."""

from glow.celery import app as celery_app

__all__ = ["celery_app"]
