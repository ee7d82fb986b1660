"""Concurrent connections per app, counted across every node."""
