"""The local provider: a deterministic offline simulator of Glow's model tasks."""

from glow.ai.local.provider import ECHO_MODEL, LocalProvider

__all__ = ["ECHO_MODEL", "LocalProvider"]
