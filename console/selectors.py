"""Reads of the cluster domain, scoped by who asks. Views, APIs and consumers share these."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from console import provisioning
from console.models import AuditEntry, Certificate, Cluster, Database, Node, User
from console.tls import database_tls_spec
from replication.syncer.checkpoint import CHECKPOINT_KEY, EPOCH_KEY, epoch_key

# The syncer's bookkeeping keys a shard may hold: the checkpoint and the epoch markers
# (replication/syncer/checkpoint.py); counted out of every key count the console shows.
_BOOKKEEPING_KEYS = (CHECKPOINT_KEY, EPOCH_KEY, *(epoch_key(n) for n in range(256)))


def database_list(*, user: User) -> QuerySet[Database]:
    # Every signed-in role may read every database; secrets are filtered by the serializers.
    del user
    return Database.objects.select_related("node").prefetch_related("shards")


# Ids are 64-bit in every database engine; a larger number in a URL is no database either (and
# SQLite would raise OverflowError on it).
MAX_UID = 2**63 - 1


def database_get_for_user(*, user: User, uid: int | str) -> Database:
    try:
        pk = int(uid)
        if not 0 < pk <= MAX_UID:
            raise ValueError(pk)
        return database_list(user=user).get(pk=pk)
    except (Database.DoesNotExist, ValueError, TypeError):
        raise Http404("no such database") from None


def node_list() -> QuerySet[Node]:
    return Node.objects.all()


def node_list_with_usage() -> QuerySet[Node]:
    """Nodes with `databases_count` and `memory_allocated` (sum of their databases' limits)."""
    return (
        node_list()
        .annotate(
            databases_count=Count("databases"), memory_allocated=Sum("databases__memory_size")
        )
        .order_by("name")
    )


def cluster_get() -> Cluster | None:
    return Cluster.objects.first()


def certificate_list() -> QuerySet[Certificate]:
    return Certificate.objects.order_by("kind")


def audit_object_types() -> list[str]:
    """The object types that occur in the audit log, for its filter."""
    return sorted(AuditEntry.objects.order_by().values_list("object_type", flat=True).distinct())


def audit_list(*, action: str = "", object_type: str = "", actor: str = "") -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.all()
    if action:
        qs = qs.filter(action__icontains=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if actor:
        qs = qs.filter(actor_name=actor)
    return qs


def _slot(key: bytes) -> int:
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % 16384


def database_key_count(database: Database) -> int | None:
    """The keys of the database's users in every logical database, the syncer's bookkeeping
    keys not counted (so that it equals a source's count); None when a shard does not answer."""
    spec = database_spec(database)
    total = 0
    for shard, row in zip(spec.shards, database.shards.all(), strict=True):
        lo, hi = row.slot_range()
        own = [k for k in _BOOKKEEPING_KEYS if not database.is_sharded or lo <= _slot(k) <= hi]
        client = provisioning.admin_client(spec, shard, timeout=2.0)
        try:
            keyspace = client.info("keyspace")
            total += sum(int(v["keys"]) for v in keyspace.values() if isinstance(v, dict))
            # One EXISTS per key: a cluster shard refuses multi-key commands across slots.
            pipe = client.pipeline(transaction=False)
            for key in own:
                pipe.exists(key)
            total -= sum(int(n) for n in pipe.execute())
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()
    return total


@dataclass(frozen=True, slots=True)
class ConnectedReplica:
    """A replica connected to a shard now, as the shard reports it."""

    shard: int
    address: str  # the replica's address as it announced it (INFO replication: ip, port)
    connection: str  # its connection's address (CLIENT LIST TYPE replica), "" when ambiguous
    state: str  # online, wait_bgsave, send_bulk, …
    offset: int  # the replication offset it acknowledged
    behind_bytes: int  # the shard's offset minus the replica's
    lag_s: int | None  # seconds since its last acknowledgement


def database_replicas(database: Database) -> list[ConnectedReplica] | None:
    """The replicas connected to each shard of the database now: other clusters' syncers,
    native Redis replicas, and this cluster's own sync jobs alike (they all speak the replication
    protocol); None when a shard does not answer."""
    spec = database_spec(database)
    found: list[ConnectedReplica] = []
    for shard in spec.shards:
        client = provisioning.admin_client(spec, shard, timeout=2.0)
        try:
            info = client.info("replication")
            connections = client.client_list(_type="replica")
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()
        master_offset = int(info.get("master_repl_offset", 0))
        by_ip: dict[str, list[str]] = {}
        for c in connections:
            addr = str(c.get("addr", ""))
            by_ip.setdefault(addr.rsplit(":", 1)[0], []).append(addr)
        for name in sorted((k for k in info if k.startswith("slave")), key=lambda k: int(k[5:])):
            r = info[name]
            if not isinstance(r, dict):
                continue
            ip = str(r.get("ip", ""))
            same_ip = by_ip.get(ip, [])
            offset = int(r.get("offset", 0))
            lag = r.get("lag")
            found.append(
                ConnectedReplica(
                    shard=shard.index,
                    address=f"{ip}:{r.get('port', '')}",
                    connection=same_ip[0] if len(same_ip) == 1 else "",
                    state=str(r.get("state", "")),
                    offset=offset,
                    behind_bytes=max(0, master_offset - offset),
                    lag_s=None if lag is None else int(lag),
                )
            )
    return found


def database_spec(database: Database) -> provisioning.DatabaseSpec:
    """What the node needs to run the database's processes, read from its rows."""
    shards = tuple(
        provisioning.ShardSpec(
            index=s.index,
            port=s.port,
            slots=s.slot_range(),
            # TLS between databases only is for databases of one shard (console.services).
            tls_port=database.tls_port if s.index == 0 else None,
        )
        for s in database.shards.all()
    )
    return provisioning.DatabaseSpec(
        uid=database.pk,
        name=database.name,
        bind=database.node.address,
        memory_size=database.memory_size,
        persistence=database.persistence,
        password=database.password,
        internal_password=database.internal_password,
        shards=shards,
        data_dir=settings.DATA_DIR,
        redis_server=settings.REDIS_SERVER_BIN,
        read_only=database.read_only,
        tls=database_tls_spec(database),
    )


def user_list() -> list[User]:
    return list(User.objects.order_by("id"))


def user_get(*, uid: int | str) -> User:
    try:
        pk = int(uid)
        if not 0 < pk <= MAX_UID:
            raise ValueError(pk)
        return User.objects.get(pk=pk)
    except (User.DoesNotExist, ValueError, TypeError):
        raise Http404("no such user") from None
