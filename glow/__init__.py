"""Glow: practise hard conversations against AI-simulated people."""

__version__ = "0.1.0"
__all__ = ["__version__", "celery_app"]


def __getattr__(name: str):
    # Lazy, so `glow` (the CLI) imports neither Celery nor Django; Django processes load the app
    # in CoreConfig.ready() and `celery -A glow` reads it here.
    if name == "celery_app":
        from glow.celery import app

        return app
    raise AttributeError(f"module 'glow' has no attribute {name!r}")
