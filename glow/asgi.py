"""ASGI entry point: the whole site, including the SSE watch streams, served by uvicorn.

/mcp (the MCP server's streamable HTTP endpoint) and the lifespan, which runs its session
manager, go to the MCP app; everything else to Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
# Requests run in threads of their own here: pool PostgreSQL connections (glow/settings.py).
os.environ.setdefault("GLOW_DB_POOL", "true")
django_application = get_asgi_application()

from glow.mcp_server import http_app  # noqa: E402  (needs Django set up)

mcp_application = http_app(django_application)


async def application(scope, receive, send):
    if scope["type"] == "lifespan" or (
        scope["type"] == "http" and scope["path"].rstrip("/") == "/mcp"
    ):
        await mcp_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
