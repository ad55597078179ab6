"""ASGI entry point: the whole site, including the SSE watch streams, served by uvicorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
# Requests run in threads of their own here: pool PostgreSQL connections (glow/settings.py).
os.environ.setdefault("GLOW_DB_POOL", "true")
application = get_asgi_application()
