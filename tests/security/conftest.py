"""Fixtures the hostile tests share with the component tests they attack."""

from tests.runtime.crm_tools.conftest import short_dir
from tests.sessions.conftest import memcached_address

__all__ = ["memcached_address", "short_dir"]
