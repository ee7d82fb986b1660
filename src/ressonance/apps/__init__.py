"""App stores: where tenants' credentials and settings live."""
