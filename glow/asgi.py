"""ASGI entry point: the whole site, including the SSE watch streams, served by uvicorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
application = get_asgi_application()
