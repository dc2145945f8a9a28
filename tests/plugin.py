"""Loaded with `-p` before pytest-django reads the settings: give the whole run its own control
Redis on a free port, its own var/ directory and a database port range apart from `make run`'s.
"""

from __future__ import annotations

import atexit
import os
import secrets
import tempfile

from tests.support.servers import RedisServer

_var = os.environ.get("CONSOLE_VAR_DIR") or tempfile.mkdtemp(prefix="console-test-")
os.environ["CONSOLE_VAR_DIR"] = _var
os.environ.setdefault("CONSOLE_DATA_DIR", os.path.join(_var, "databases"))
os.environ.setdefault("CONSOLE_DB_PORT_MIN", "24000")
os.environ.setdefault("CONSOLE_DB_PORT_MAX", "24999")
os.environ.setdefault("CONSOLE_RECONCILE_INTERVAL", "1")

# With a password, as `make run`'s: every client of the suite (Celery, channel layer, cache,
# control keys) goes through the authenticated URL.
control_redis = RedisServer(args=["--appendonly", "no"], password=secrets.token_urlsafe(24)).start()
os.environ["REDIS_URL"] = f"{control_redis.url}/0"
atexit.register(control_redis.stop)
