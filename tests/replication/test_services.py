"""Replica Of validation: cycles, limits, URLs, credentials — each refusal changes nothing."""

from __future__ import annotations

import pytest
from django.conf import settings

from console import services as console_services
from console.errors import ApplicationError
from replication import services
from replication.endpoints import internal_source_url
from replication.graph import cycle_candidates
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync
from replication.sources import SourceInput
from tests.support.servers import RedisServer, free_port

MB = 1024 * 1024


@pytest.fixture
def dbs(admin_user):
    def make(*names: str):
        return [
            console_services.database_create(actor=admin_user, name=n, memory_size=8 * MB)
            for n in names
        ]

    return make


def _state() -> list[tuple[int, int, int | None, str]]:
    return list(
        ReplicaSource.objects.values_list(
            "destination_id", "uid", "source_database_id", "external_uri"
        )
    )


def _set(admin_user, dest, *srcs, check=False, **kw):
    inputs = [SourceInput(source_database_uid=s.pk, **kw) for s in srcs]
    if check:
        services.replica_sources_check(destination=dest, sources=inputs)
    return services.replica_sources_set(actor=admin_user, destination=dest, sources=inputs)


def test_sources_set_bumps_generation_and_enables(admin_user, dbs):
    a, b = dbs("a", "b")
    r1 = _set(admin_user, b, a)
    assert r1.replica_sync == ReplicaSync.ENABLED and r1.generation == 1
    assert [s.source_database_id for s in b.replica_sources.all()] == [a.pk]
    r2 = _set(admin_user, b)
    assert r2.replica_sync == ReplicaSync.DISABLED and r2.generation == 2


def test_direct_and_chained_cycles_are_refused(admin_user, dbs):
    a, b, c = dbs("a", "b", "c")
    _set(admin_user, a, b)  # A <- B
    before = _state()
    with pytest.raises(ApplicationError) as err:
        _set(admin_user, b, a)  # B <- A closes A <- B <- A
    assert err.value.field == "replica_sources" and "cycle" in err.value.message
    assert _state() == before

    _set(admin_user, b, c)  # A <- B <- C
    before = _state()
    with pytest.raises(ApplicationError):
        _set(admin_user, c, a)  # C <- A closes the chain
    with pytest.raises(ApplicationError) as err:
        _set(admin_user, a, a)
    assert "itself" in err.value.message
    assert _state() == before
    assert set(cycle_candidates(c)) == {a.pk, b.pk, c.pk}


def test_external_url_of_a_cluster_database_counts_for_cycles(admin_user, dbs):
    a, b = dbs("a", "b")
    _set(admin_user, a, b)
    url = f"redis://admin:x@localhost:{a.port}"
    with pytest.raises(ApplicationError) as err:
        services.replica_sources_set(
            actor=admin_user, destination=b, sources=[SourceInput(uri=url)]
        )
    assert "cycle" in err.value.message


def test_thirty_third_source_is_refused(admin_user):
    dest = console_services.database_create(actor=admin_user, name="dest", memory_size=8 * MB)
    urls = [SourceInput(uri=f"redis://10.0.0.{i}:6379") for i in range(1, 34)]
    with pytest.raises(ApplicationError) as err:
        services.replica_sources_set(actor=admin_user, destination=dest, sources=urls)
    assert err.value.field == "replica_sources" and "32" in err.value.message
    assert not ReplicaSource.objects.exists()
    services.replica_sources_set(actor=admin_user, destination=dest, sources=urls[:32])
    assert ReplicaSource.objects.count() == 32


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://host:6379", "scheme"),
        ("redis://host:99999", "range"),
        ("redis://host:6379?password=x", "unknown URL parameter"),
        ("redis://secret@host:6379", "credentials"),
        ("redis://::1:6379", "brackets"),
        ("not a url", "whitespace"),
    ],
)
def test_malformed_urls_are_field_errors(admin_user, uri, words):
    dest = console_services.database_create(actor=admin_user, name="dest", memory_size=8 * MB)
    with pytest.raises(ApplicationError) as err:
        services.replica_sources_set(
            actor=admin_user,
            destination=dest,
            sources=[SourceInput(uri=uri)],
        )
    assert err.value.field == "replica_sources[0].uri"
    assert words in err.value.message
    assert "secret" not in err.value.message
    assert not ReplicaOf.objects.filter(destination=dest, generation__gt=0).exists()


def test_url_of_the_control_redis_is_refused(admin_user):
    dest = console_services.database_create(actor=admin_user, name="dest", memory_size=8 * MB)
    control = settings.REDIS_URL.rsplit("/", 1)[0]
    with pytest.raises(ApplicationError) as err:
        services.replica_sources_set(
            actor=admin_user,
            destination=dest,
            sources=[SourceInput(uri=control)],
        )
    assert "control Redis" in err.value.message


def test_connection_check_refuses_bad_credentials_and_dead_hosts(admin_user):
    dest = console_services.database_create(actor=admin_user, name="dest", memory_size=8 * MB)
    with RedisServer(password="right-pass") as src:
        for uri, words in [
            (f"redis://:wrong-pass@127.0.0.1:{src.port}", "authentication failed"),
            (f"redis://127.0.0.1:{free_port()}", "cannot connect"),
        ]:
            with pytest.raises(ApplicationError) as err:
                services.replica_sources_check(destination=dest, sources=[SourceInput(uri=uri)])
            assert words in err.value.message
            assert "wrong-pass" not in err.value.message
        assert not ReplicaSource.objects.exists()
        ok = f"redis://:right-pass@127.0.0.1:{src.port}"
        services.replica_sources_check(destination=dest, sources=[SourceInput(uri=ok)])
        services.replica_sources_set(
            actor=admin_user, destination=dest, sources=[SourceInput(uri=ok)]
        )
    source = ReplicaSource.objects.get()
    assert source.external_uri == ok


def test_replica_sync_transitions(admin_user, dbs):
    a, b = dbs("a", "b")
    with pytest.raises(ApplicationError):
        services.replica_sync_set(actor=admin_user, destination=b, state="enabled")
    _set(admin_user, b, a)
    for state in ["paused", "enabled", "stopped"]:
        assert (
            services.replica_sync_set(actor=admin_user, destination=b, state=state).replica_sync
            == state
        )
    with pytest.raises(ApplicationError) as err:
        services.replica_sync_set(actor=admin_user, destination=b, state="paused")
    assert err.value.field == "replica_sync"
    gen = ReplicaOf.objects.get(destination=b).generation
    assert (
        services.replica_sync_set(actor=admin_user, destination=b, state="enabled").generation
        == gen + 1
    )


def test_internal_source_url_carries_the_internal_password(admin_user, dbs):
    (a,) = dbs("a")
    url = internal_source_url(a)
    assert url == f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"
    assert a.internal_password not in internal_source_url(a, redact=True)


def test_a_database_used_as_a_source_cannot_be_deleted(admin_user, dbs):
    a, b = dbs("a", "b")
    _set(admin_user, b, a)
    with pytest.raises(ApplicationError) as err:
        services.database_delete(actor=admin_user, database=a)
    assert "source of b" in err.value.message
    a.refresh_from_db()
    assert a.status == "pending"


def test_a_stopped_destination_shows_no_source_syncing(admin_user, dbs, admin_api):
    from replication.live import LiveSource

    a, b, c = dbs("a", "b", "c")
    replica_of = _set(admin_user, c, a, b)
    assert {s.status for s in c.replica_sources.all()} == {"syncing"}
    services.replica_sync_set(actor=admin_user, destination=c, state=ReplicaSync.STOPPED)
    body = admin_api.get(f"/v1/bdbs/{c.pk}").json()
    assert body["replica_sync"] == "stopped"
    assert [s["status"] for s in body["replica_sources"]] == ["out-of-sync", "out-of-sync"]

    def job_saves(status: str) -> list[str]:
        replica_of.refresh_from_db()
        services.replica_sources_live_save(
            destination_id=c.pk,
            generation=replica_of.generation,
            sources=[LiveSource(uid=1, name="a", source_database_id=a.pk, status=status)],
        )
        return [s["status"] for s in admin_api.get(f"/v1/bdbs/{c.pk}").json()["replica_sources"]]

    # The job, ending after the stop, saves its last values: they do not bring `syncing` back.
    assert job_saves("syncing") == ["out-of-sync", "out-of-sync"]
    # Start makes a new generation: syncing again, and the job's values are saved again.
    services.replica_sync_set(actor=admin_user, destination=c, state=ReplicaSync.ENABLED)
    assert job_saves("in-sync") == ["in-sync", "syncing"]


def test_verify_keeps_the_last_ten_runs_and_one_at_a_time(admin_user, dbs):
    from replication.models import VerifyRun, VerifyState

    a, b = dbs("a", "b")
    _set(admin_user, b, a)
    started = []
    for _ in range(12):
        run = services.replica_verify_start(
            actor=admin_user, destination=b, rate=None, ttl_tolerance_ms=1000
        )
        with pytest.raises(ApplicationError, match="already running"):
            services.replica_verify_start(
                actor=admin_user, destination=b, rate=None, ttl_tolerance_ms=1000
            )
        services.replica_verify_finish(run_id=run.pk, state=VerifyState.FAILED, error="x")
        started.append(run.pk)
    kept = list(VerifyRun.objects.filter(destination=b).values_list("pk", flat=True))
    assert kept == started[::-1][:10]
