"""WSGI entry point (admin and API only: SSE needs the ASGI entry point)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
application = get_wsgi_application()
