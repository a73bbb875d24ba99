"""Fixtures the hostile tests share with the component tests they attack."""

from tests.sessions.conftest import memcached_address

__all__ = ["memcached_address"]
