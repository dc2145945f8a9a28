"""Database processes on this node: config files, start, ACL users, Redis Cluster, stop, cleanup.

Runs inside the node's Celery worker. It knows nothing of the ORM: `console.services` turns rows
into a `DatabaseSpec` and records the outcome. Processes are daemonized redis-servers with a
pidfile, so they outlive the worker and the console and are adopted again at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import redis

from console.files import write_private

START_TIMEOUT_S = 30.0
CLUSTER_TIMEOUT_S = 60.0
ADMIN_USER = "admin"


class ProvisioningError(Exception):
    """A database process could not be started or configured; the message is for the operator."""


@dataclass(frozen=True, slots=True)
class ShardSpec:
    index: int
    port: int
    slots: tuple[int, int]
    # The TLS port beside the plain `port` (TLS between databases only); None otherwise.
    tls_port: int | None = None


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """TLS on the database's endpoint: the cluster's proxy certificate as the server certificate,
    `trusted` (PEM bundle) as the client certificates accepted when `auth_clients` is on; the
    syncer certificate is what the console itself presents. `all_connections`: TLS only on the
    database's port (`enabled`); otherwise the plain port stays for applications and TLS is
    served on each shard's `tls_port` (`replica_ssl`)."""

    cert: str
    key: str = field(repr=False)
    trusted: str
    auth_clients: bool
    client_cert: str
    client_key: str = field(repr=False)
    all_connections: bool = True

    def files(self) -> dict[str, str]:
        """File name → content of the TLS files of a shard. The names carry a digest of the
        content: redis-server reloads its TLS context on CONFIG SET only when a value changes,
        so new material gets new names (and a certificate replaced in place applies at once)."""
        # Our own certificates are always trusted: the console manages the database with the
        # syncer certificate, and the shards of a cluster meet each other with the proxy one.
        bundle = "\n".join(
            p for p in (self.trusted.strip(), self.client_cert.strip(), self.cert.strip()) if p
        )
        contents = {
            "tls": self.cert,
            "tls-key": self.key,
            "trusted": bundle + "\n",
        }
        return {
            f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.pem": text
            for stem, text in contents.items()
        }

    def file_of(self, stem: str) -> str:
        return next(name for name in self.files() if name.rsplit("-", 1)[0] == stem)


@dataclass(frozen=True, slots=True)
class DatabaseSpec:
    uid: int
    name: str
    bind: str
    memory_size: int
    persistence: str
    password: str
    internal_password: str = field(repr=False)
    shards: tuple[ShardSpec, ...]
    data_dir: Path
    redis_server: str = "redis-server"
    # A Replica Of destination: application users may read but not write (the syncer is admin).
    read_only: bool = False
    tls: TlsSpec | None = None

    @property
    def sharded(self) -> bool:
        return len(self.shards) > 1

    def shard_dir(self, shard: ShardSpec) -> Path:
        return database_dir(self.data_dir, self.uid) / f"shard-{shard.index}"


def database_dir(data_dir: Path, uid: int) -> Path:
    return data_dir / f"bdb-{uid}"


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# What the application user (`default`) may run. Redis' own categories decide, so that a command
# added by a later Redis lands on the right side:
# - never `@admin` or `@dangerous` (ACL, CONFIG, DEBUG, MODULE, REPLICAOF/SLAVEOF, SHUTDOWN, SAVE,
#   MONITOR, CLIENT LIST/KILL/PAUSE, FLUSHALL/FLUSHDB, KEYS, SORT, MIGRATE/RESTORE, SWAPDB, the
#   cluster's topology changes, PSYNC/SYNC/REPLCONF): with them an application could read the
#   internal password's hash, make a read-only destination writable again, or stop the server;
# - never loading or removing functions (FUNCTION LOAD/DELETE/FLUSH/RESTORE are only `@write`):
#   they are server-side code shared by everyone, the operator's business like modules;
# - but INFO (`@dangerous` for its cost only): health checks and client libraries read it.
# A writable database gives everything else (reads, writes, MULTI/EXEC, scripts, Pub/Sub, CLIENT
# SETNAME...). A Replica Of destination gives an allow-list instead of "all but writes": reads,
# the connection (AUTH, HELLO, SELECT, CLIENT SETNAME/ID/TRACKING...), MULTI/EXEC/WATCH, Pub/Sub,
# EVAL/EVALSHA (Redis checks every command a script calls against the same rules, so a script
# that writes is refused), FCALL_RO, TIME, and the cluster's read-only topology commands that
# cluster clients need. SCRIPT LOAD is not in it: nothing needs a script cached on a replica.
_NEVER = ["-@admin", "-@dangerous", "+info"]
_NO_FUNCTION_CHANGES = [f"-function|{sub}" for sub in ("load", "delete", "flush", "restore")]
APP_RIGHTS_WRITABLE = ["-@all", "+@all", *_NEVER, *_NO_FUNCTION_CHANGES]
APP_RIGHTS_READ_ONLY = [
    "-@all",
    "+@read",
    "+@connection",
    "+@transaction",
    "+@pubsub",
    *_NEVER,
    "+eval",
    "+evalsha",
    "+eval_ro",
    "+evalsha_ro",
    "+fcall_ro",
    "+time",
    *(
        f"+cluster|{sub}"
        for sub in ("info", "nodes", "slots", "shards", "myid", "keyslot", "countkeysinslot")
    ),
]


def app_rights(spec: DatabaseSpec) -> list[str]:
    """The command rules of the application user (see above)."""
    return APP_RIGHTS_READ_ONLY if spec.read_only else APP_RIGHTS_WRITABLE


def _user_rules(spec: DatabaseSpec) -> list[tuple[str, str, list[str]]]:
    """(user, password rule, command rules) of every ACL user of a database process."""
    default = f"#{_sha256(spec.password)}" if spec.password else "nopass"
    return [
        ("default", default, app_rights(spec)),
        (ADMIN_USER, f"#{_sha256(spec.internal_password)}", ["-@all", "+@all"]),
    ]


def acl_lines(spec: DatabaseSpec) -> list[str]:
    """ACL users, with SHA-256 password hashes so no clear password is written to disk."""
    return [
        f"user {user} on {password} ~* &* {' '.join(rules)}"
        for user, password, rules in _user_rules(spec)
    ]


def backlog_size(spec: DatabaseSpec) -> int:
    """A tenth of the database's memory per shard, between 1 MB and 256 MB."""
    per_shard = spec.memory_size // len(spec.shards)
    return min(max(per_shard // 10, 1024 * 1024), 256 * 1024 * 1024)


def tls_settings(spec: DatabaseSpec, shard: ShardSpec) -> dict[str, str]:
    """The TLS settings of a shard that may change while it runs (files, client auth)."""
    assert spec.tls is not None
    d = spec.shard_dir(shard)
    return {
        "tls-cert-file": str(d / spec.tls.file_of("tls")),
        "tls-key-file": str(d / spec.tls.file_of("tls-key")),
        "tls-ca-cert-file": str(d / spec.tls.file_of("trusted")),
        "tls-auth-clients": "yes" if spec.tls.auth_clients else "no",
    }


def _endpoint_lines(spec: DatabaseSpec, shard: ShardSpec) -> list[str]:
    if spec.tls is None:
        return [f"port {shard.port}"]
    settings_lines = [f"{k} {v}" for k, v in tls_settings(spec, shard).items()]
    settings_lines.append('tls-protocols "TLSv1.2 TLSv1.3"')  # Redis's default, said explicitly
    if not spec.tls.all_connections:
        # Between databases only: applications keep the plain port.
        return [f"port {shard.port}", f"tls-port {shard.tls_port}", *settings_lines]
    lines = ["port 0", f"tls-port {shard.port}", *settings_lines, "tls-replication yes"]
    if spec.sharded:
        lines.append("tls-cluster yes")
    return lines


def config_text(spec: DatabaseSpec, shard: ShardSpec) -> str:
    d = spec.shard_dir(shard)
    per_shard_memory = max(spec.memory_size // len(spec.shards), 1024 * 1024)
    lines = [
        "# Written by the Replica Of Console; edits are overwritten.",
        *_endpoint_lines(spec, shard),
        f"bind {spec.bind}",
        # Access is the ACL's business: a database without a password is open on purpose (the
        # operator chose it), and protected mode would refuse even the console's `admin` on a
        # node address that is not loopback.
        "protected-mode no",
        "daemonize yes",
        f"pidfile {d / 'redis.pid'}",
        f"logfile {d / 'redis.log'}",
        f"dir {d}",
        f"aclfile {d / 'users.acl'}",
        f"maxmemory {per_shard_memory}",
        "maxmemory-policy noeviction",
        "enable-debug-command local",
        # Room for a Replica Of destination to resume by partial sync after an outage.
        f"repl-backlog-size {backlog_size(spec)}",
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
    ]
    if spec.persistence == "aof":
        lines += ["appendonly yes", "appendfsync everysec", 'save ""']
    elif spec.persistence == "snapshot":
        lines += ["appendonly no", "save 3600 1 300 100 60 10000", "dbfilename dump.rdb"]
    else:
        lines += ["appendonly no", 'save ""']
    if spec.sharded:
        lines += [
            "cluster-enabled yes",
            f"cluster-config-file {d / 'nodes.conf'}",
            "cluster-node-timeout 5000",
            "cluster-require-full-coverage yes",
        ]
    return "\n".join(lines) + "\n"


def _private_dir(path: Path) -> None:
    """A directory only the console's user can enter (also one an earlier version made 0755)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def write_files(spec: DatabaseSpec, shard: ShardSpec) -> Path:
    d = spec.shard_dir(shard)
    for directory in (spec.data_dir, database_dir(spec.data_dir, spec.uid), d):
        _private_dir(directory)
    write_private(d / "users.acl", "\n".join(acl_lines(spec)) + "\n")
    if spec.tls is not None:
        files = spec.tls.files()
        for name, text in files.items():
            write_private(d / name, text)
        write_private(d / "client.crt", spec.tls.client_cert)
        write_private(d / "client.key", spec.tls.client_key)
    conf = d / "redis.conf"
    write_private(conf, config_text(spec, shard))
    return conf


def admin_client(
    spec: DatabaseSpec, shard: ShardSpec, *, timeout: float = 5.0, password: str | None = None
) -> redis.Redis:
    """A client of one shard as `admin` (with the spec's internal password unless given)."""
    host = "127.0.0.1" if spec.bind in {"0.0.0.0", "*"} else spec.bind.split()[0]  # noqa: S104 - only compared, never bound
    tls: dict[str, object] = {}
    # With TLS between databases only, the console manages the shard on its plain port.
    if spec.tls is not None and spec.tls.all_connections:
        d = spec.shard_dir(shard)
        tls = {
            "ssl": True,
            # Every proxy certificate the shard has on disk: while a replaced one is being
            # applied, the process still serves the old one until CONFIG SET.
            "ssl_ca_data": "\n".join(
                p.read_text()
                for p in sorted(d.glob("tls-*.pem"))
                if not p.name.startswith("tls-key-")
            )
            or spec.tls.cert,
            "ssl_check_hostname": False,
            "ssl_certfile": str(d / "client.crt"),
            "ssl_keyfile": str(d / "client.key"),
        }
    return redis.Redis(
        host=host,
        port=shard.port,
        username=ADMIN_USER,
        password=spec.internal_password if password is None else password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **tls,  # type: ignore[arg-type]
    )


def read_pid(spec: DatabaseSpec, shard: ShardSpec) -> int | None:
    try:
        return int((spec.shard_dir(shard) / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is dead for us.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def shard_answers(spec: DatabaseSpec, shard: ShardSpec) -> bool:
    try:
        return bool(admin_client(spec, shard, timeout=1.0).ping())
    except redis.RedisError:
        return False


def log_tail(spec: DatabaseSpec, shard: ShardSpec, lines: int = 5) -> str:
    try:
        text = (spec.shard_dir(shard) / "redis.log").read_text(errors="replace")
    except OSError:
        return ""
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing on this host listens on `port` (checked by binding it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start_shard(spec: DatabaseSpec, shard: ShardSpec) -> None:
    """Start one shard's process and wait until it answers as `admin`."""
    conf = write_files(spec, shard)
    if pid_alive(read_pid(spec, shard)) and shard_answers(spec, shard):
        return  # adopted: already running
    with contextlib.suppress(FileNotFoundError):
        (spec.shard_dir(shard) / "redis.pid").unlink()
    log = spec.shard_dir(shard) / "redis.log"
    log_start = log.stat().st_size if log.exists() else 0
    # umask: the data (AOF, RDB), the log and nodes.conf are the console user's only, whoever
    # started the worker.
    result = subprocess.run(
        [spec.redis_server, str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        umask=0o077,
    )
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip() or log_tail(spec, shard)
        raise ProvisioningError(f"shard {shard.index} failed to start: {reason}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not shard_answers(spec, shard):
        pid = read_pid(spec, shard)
        if (
            (pid is not None and not pid_alive(pid))
            or _aborted(log, log_start)
            or time.monotonic() > deadline
        ):
            reason = log_tail(spec, shard) or "no answer"
            raise ProvisioningError(
                f"shard {shard.index} on port {shard.port} did not start: {reason}"
            )
        time.sleep(0.05)


def _aborted(log: Path, start: int) -> bool:
    """True when redis-server wrote that it gives up (it exits without leaving a pidfile)."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            new = f.read().lower()
    except OSError:
        return False
    return b"aborting" in new or b"fatal" in new


def form_cluster(spec: DatabaseSpec) -> None:
    """Assign each shard its slot range and join them; wait for cluster_state:ok everywhere."""
    clients = [admin_client(spec, s) for s in spec.shards]
    for shard, client in zip(spec.shards, clients, strict=True):
        info = client.execute_command("CLUSTER", "INFO").decode()
        if "cluster_slots_assigned:0" in info:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", shard.slots[0], shard.slots[1])
    host = clients[0].connection_pool.connection_kwargs["host"]
    for shard in spec.shards[1:]:
        clients[0].execute_command("CLUSTER", "MEET", host, shard.port)
    deadline = time.monotonic() + CLUSTER_TIMEOUT_S
    n = len(spec.shards)
    while True:
        ok = all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients)
        if ok and all(
            len(c.execute_command("CLUSTER", "NODES").decode().strip().splitlines()) == n
            for c in clients
        ):
            return
        if time.monotonic() > deadline:
            raise ProvisioningError("the shards did not form a cluster (cluster_state not ok)")
        time.sleep(0.1)


def acl_setuser_commands(spec: DatabaseSpec) -> list[list[str]]:
    """`acl_lines` as ACL SETUSER commands. Redis 7.0's ACL LOAD closes every client connection
    (Redis 7.2 only those of deleted users), which would cut the Replica Of links and the syncer's
    writers on each edit; SETUSER changes users in place and closes nothing."""
    common = ["resetkeys", "~*", "resetchannels", "&*"]
    return [
        ["ACL", "SETUSER", user, "on", "resetpass", password, *common, *rules]
        for user, password, rules in _user_rules(spec)
    ]


def _tls_files_prune(spec: DatabaseSpec, shard: ShardSpec) -> None:
    """Remove the TLS files of earlier material (after the shard took the new ones)."""
    current = set(spec.tls.files()) if spec.tls is not None else set()
    for path in spec.shard_dir(shard).glob("*.pem"):
        if path.name not in current:
            path.unlink(missing_ok=True)


def apply_runtime_config(spec: DatabaseSpec) -> None:
    """Push ACL users, maxmemory and the TLS material to running shards (after an edit, or a
    replaced cluster certificate): nothing restarts. New TLS files have new names, so
    redis-server loads them on CONFIG SET (new connections get them; open ones keep theirs); a
    TLS port is opened or closed live when the database turns TLS between databases on or off."""
    for shard in spec.shards:
        write_files(spec, shard)
        client = admin_client(spec, shard)
        try:
            for command in acl_setuser_commands(spec):
                client.execute_command(*command)
            per_shard = max(spec.memory_size // len(spec.shards), 1024 * 1024)
            client.config_set("maxmemory", per_shard)
            if spec.tls is not None:
                settings = tls_settings(spec, shard)
                client.execute_command("CONFIG", "SET", *chain.from_iterable(settings.items()))
                if not spec.tls.all_connections:
                    # After the material: the port opens with a TLS context that has it.
                    client.execute_command("CONFIG", "SET", "tls-port", str(shard.tls_port))
            else:
                client.execute_command("CONFIG", "SET", "tls-port", "0")
        except redis.ResponseError as exc:
            raise ProvisioningError(f"shard {shard.index} refused the new settings: {exc}") from exc
        finally:
            client.close()
        _tls_files_prune(spec, shard)


def _admin_password_set(spec: DatabaseSpec, shard: ShardSpec, *, old: str, new: str) -> None:
    client = admin_client(spec, shard, password=old)
    try:
        client.execute_command("ACL", "SETUSER", ADMIN_USER, "resetpass", f"#{_sha256(new)}")
        client.execute_command("ACL", "SAVE")
    finally:
        client.close()


def admin_password_rotate(spec: DatabaseSpec, new_password: str) -> None:
    """Give the `admin` user `new_password` on every shard at once, save it to the ACL file and
    close every other connection of `admin` (replicas using the old password must authenticate
    again, and fail). `spec` still holds the current password. On failure the shards already
    changed are put back and the error is raised."""
    old = spec.internal_password
    done: list[ShardSpec] = []
    try:
        for shard in spec.shards:
            _admin_password_set(spec, shard, old=old, new=new_password)
            done.append(shard)
    except Exception:
        for shard in done:
            with contextlib.suppress(Exception):
                _admin_password_set(spec, shard, old=new_password, new=old)
        raise
    for shard in spec.shards:
        client = admin_client(spec, shard, password=new_password)
        try:
            client.execute_command("CLIENT", "KILL", "USER", ADMIN_USER, "SKIPME", "yes")
        finally:
            client.close()


def start_database(spec: DatabaseSpec) -> None:
    for shard in spec.shards:
        start_shard(spec, shard)
    if spec.sharded:
        form_cluster(spec)


def stop_shard(spec: DatabaseSpec, shard: ShardSpec, *, sig: int = signal.SIGKILL) -> None:
    pid = read_pid(spec, shard)
    if pid and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def remove_database(spec: DatabaseSpec) -> None:
    """Stop every shard and delete the database's files."""
    for shard in spec.shards:
        stop_shard(spec, shard)
    shutil.rmtree(database_dir(spec.data_dir, spec.uid), ignore_errors=True)


def dead_shards(spec: DatabaseSpec) -> list[ShardSpec]:
    return [s for s in spec.shards if not pid_alive(read_pid(spec, s))]
