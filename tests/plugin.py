"""Loaded with `-p` before pytest-django reads the settings: give the whole run its own control
Redis on a free port, its own var/ directory and a database port range apart from `make run`'s.

Two switches make the production pass of `make test` (scripts/test.sh):
- `CONSOLE_TEST_DATABASE=postgres`: the console database is a PostgreSQL cluster of the run's own
  (tests/support/postgres.py; pytest-django creates `test_console` in it), not SQLite;
- `CONSOLE_TEST_CONTROL_REDIS=acl`: the control Redis refuses the `default` user and is reached
  as the ACL user `console` with a password, allowed only `CONTROL_REDIS_ACL`
  (`REDIS_URL=redis://console:<pw>@127.0.0.1:<port>/0`, as an operator's external Redis).
Both are stopped and deleted when the run ends.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import tempfile

from tests.support.servers import RedisServer

# What the console's processes (Celery broker and pidbox, channel layer, cache, sync control
# keys) need from a control Redis, and what docs/deploy.md tells operators to grant: every key
# and channel, every command except administration and the dangerous ones (CONFIG, DEBUG,
# FLUSHALL, KEYS, SHUTDOWN, ACL, …), plus INFO.
CONTROL_REDIS_ACL = ["~*", "&*", "+@all", "-@admin", "-@dangerous", "+info"]

_var = os.environ.get("CONSOLE_VAR_DIR") or tempfile.mkdtemp(prefix="console-test-")
os.environ["CONSOLE_VAR_DIR"] = _var
os.environ.setdefault("CONSOLE_DATA_DIR", os.path.join(_var, "databases"))
os.environ.setdefault("CONSOLE_DB_PORT_MIN", "24000")
os.environ.setdefault("CONSOLE_DB_PORT_MAX", "24999")
os.environ.setdefault("CONSOLE_RECONCILE_INTERVAL", "1")

# With a password, as `make run`'s: every client of the suite (Celery, channel layer, cache,
# control keys) goes through the authenticated URL.
control_redis = RedisServer(args=["--appendonly", "no"], password=secrets.token_urlsafe(24)).start()
atexit.register(control_redis.stop)
if os.environ.get("CONSOLE_TEST_CONTROL_REDIS") == "acl":
    acl_password = secrets.token_urlsafe(24)
    admin = control_redis.client()
    admin.execute_command("ACL", "SETUSER", "console", "on", f">{acl_password}", *CONTROL_REDIS_ACL)
    admin.execute_command("ACL", "SETUSER", "default", "off", "resetpass", "nopass")
    admin.close()
    os.environ["REDIS_URL"] = f"redis://console:{acl_password}@127.0.0.1:{control_redis.port}/0"
else:
    os.environ["REDIS_URL"] = f"{control_redis.url}/0"

if os.environ.get("CONSOLE_TEST_DATABASE") == "postgres":
    from tests.support.postgres import PostgresServer

    postgres = PostgresServer(parent=os.environ.get("CONSOLE_TEST_PG_DIR") or None).start()
    atexit.register(postgres.stop)
    # SIGTERM (a CI timeout, scripts/test.sh's trap) ends the run like Ctrl-C: fixtures tear
    # down and atexit stops the cluster, instead of the process vanishing and leaving it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.environ["DATABASE_URL"] = postgres.url
elif os.environ.get("CONSOLE_TEST_DATABASE", "sqlite") == "sqlite":
    # Never a database of the caller's environment: the suite flushes what it uses.
    os.environ.pop("DATABASE_URL", None)
else:
    raise SystemExit("CONSOLE_TEST_DATABASE must be sqlite or postgres")
