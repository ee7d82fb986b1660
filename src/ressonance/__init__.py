"""Ressonance: a self-hostable realtime server that speaks the Pusher Channels protocol."""

__version__ = "0.1.0"

__all__ = ["__version__"]
