"""`/metrics` parsed with prometheus_client's own text parser: Redis Enterprise's Replica Of
names and labels, our counters, and totals that never go backwards, also across a killed sync
worker."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from console.models import Database, User
from replication import control
from replication import services as replica_services
from replication.live import LiveSource
from replication.models import ReplicaOf
from replication.sources import SourceInput
from tests.support.databases import create_active
from tests.support.load import BatchLoad, caught_up, populate
from tests.support.wait import wait_for

MB = 1024 * 1024

RE_V1 = {
    "bdb_replicaof_syncer_ingress_bytes": "gauge",
    "bdb_replicaof_syncer_ingress_bytes_decompressed": "gauge",
    "bdb_replicaof_syncer_local_ingress_lag_time": "gauge",
    "bdb_replicaof_syncer_status": "gauge",
}
RE_V2 = {
    # prometheus-client cannot type a counter without `_total`: untyped, under RE's exact name.
    "replica_src_ingress_bytes": "unknown",
    "replica_src_ingress_bytes_decompressed": "unknown",
    "database_syncer_lag_ms": "gauge",
    "database_syncer_current_status": "gauge",
}
OURS = {
    "replicaof_source_ingress_bytes": "counter",
    "replicaof_source_ingress_bytes_decompressed": "counter",
    "replicaof_source_commands_applied": "counter",
    "replicaof_source_up": "gauge",
    "replicaof_source_lag_milliseconds": "gauge",
    "replicaof_sync_state": "gauge",
}

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(api: Any) -> tuple[dict[str, str], Samples]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for ls, v in samples.get(name, []) if all(ls.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


@pytest.mark.django_db
def test_names_types_labels_and_values(
    admin_api: Any, admin_user: User, database: Database
) -> None:
    replica_services.replica_sources_set(
        actor=admin_user,
        destination=database,
        sources=[
            SourceInput(uri="redis://192.0.2.1:6379"),
            SourceInput(uri="redis://192.0.2.2:6379"),
        ],
    )
    uid = database.pk
    generation = ReplicaOf.objects.get(destination=database).generation
    control.history_clear(uid, range(1, 33))  # the on_commit of the test transaction never runs
    replica_services.replica_sources_live_save(
        destination_id=uid,
        generation=generation,
        sources=[
            LiveSource(uid=1, name="a", source_database_id=None, status="in-sync", lag=40),
            LiveSource(uid=2, name="b", source_database_id=None, status="syncing", lag=None),
        ],
    )
    now = time.time()
    for second in range(3):
        control.stats_append(
            uid,
            {
                1: {
                    "t": now - second,
                    "lag": 40,
                    "commands": 7,
                    "ingress_bytes": 100,
                    "ingress_bytes_decompressed": 300,
                },
                2: {
                    "t": now - second,
                    "lag": None,
                    "commands": 0,
                    "ingress_bytes": 50,
                    "ingress_bytes_decompressed": 50,
                },
            },
        )
    types, samples = scrape(admin_api)
    for name, kind in {**RE_V1, **RE_V2, **OURS}.items():
        assert types.get(name) == kind, (name, types.get(name))
    cluster = "cluster.local"
    bdb = str(uid)
    # v1, per destination: rates over the last seconds, the largest lag, the worst status.
    assert value(samples, "bdb_replicaof_syncer_ingress_bytes", cluster=cluster, bdb=bdb) == (
        3 * 150 / 5
    )
    assert value(
        samples, "bdb_replicaof_syncer_ingress_bytes_decompressed", cluster=cluster, bdb=bdb
    ) == (3 * 350 / 5)
    assert value(samples, "bdb_replicaof_syncer_local_ingress_lag_time", bdb=bdb) == 40
    assert value(samples, "bdb_replicaof_syncer_status", cluster=cluster, bdb=bdb) == 1
    # v2, per source.
    assert value(samples, "replica_src_ingress_bytes", bdb=bdb, source="1", cluster=cluster) == 300
    assert value(samples, "replica_src_ingress_bytes_decompressed", bdb=bdb, source="1") == 900
    assert (
        value(samples, "database_syncer_lag_ms", bdb=bdb, source="1", syncer_type="replicaof") == 40
    )
    assert "2" not in {
        ls["source"] for ls, _ in samples["database_syncer_lag_ms"]
    }  # unknown: absent
    statuses = {ls["source"]: v for ls, v in samples["database_syncer_current_status"]}
    assert statuses == {"1": 0, "2": 1}
    assert all(
        ls["syncer_type"] == "replicaof" for ls, _ in samples["database_syncer_current_status"]
    )
    # Ours.
    assert value(samples, "replicaof_source_commands_applied_total", bdb=bdb, source="1") == 21
    assert value(samples, "replicaof_source_up", bdb=bdb, source="1") == 1
    assert value(samples, "replicaof_source_up", bdb=bdb, source="2") == 0
    assert value(samples, "replicaof_sync_state", bdb=bdb, state="enabled") == 1

    # A stopped sync is out of sync (2) in Redis Enterprise's terms.
    replica_services.replica_sync_set(actor=admin_user, destination=database, state="stopped")
    _, samples = scrape(admin_api)
    assert value(samples, "bdb_replicaof_syncer_status", bdb=bdb) == 2


@pytest.mark.django_db
def test_new_sources_start_new_counters(
    admin_api: Any, admin_user: User, database: Database
) -> None:
    control.stats_append(database.pk, {1: {"t": time.time(), "ingress_bytes": 10}})
    assert control.totals_read(database.pk, 1)["ingress_bytes"] >= 10
    control.history_clear(database.pk, range(1, 33))
    assert control.totals_read(database.pk, 1) == {
        "commands": 0,
        "ingress_bytes": 0,
        "ingress_bytes_decompressed": 0,
    }
    assert control.stats_read(database.pk, 1) == []


def test_metrics_need_a_sign_in(db: None) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get("/metrics")
    assert response.status_code == 401
    assert response.json()["error_code"] == "not_authenticated"


def _totals(api: Any, dest: Database) -> tuple[float, float]:
    _, samples = scrape(api)
    return (
        value(samples, "replica_src_ingress_bytes", bdb=str(dest.pk), source="1"),
        value(samples, "replicaof_source_commands_applied_total", bdb=str(dest.pk), source="1"),
    )


@pytest.mark.integration
@pytest.mark.slow
def test_counters_never_go_backwards_across_a_killed_sync_worker(
    admin_api: Any, live_worker: Any
) -> None:
    a = create_active(admin_api, name="ma", memory_size=128 * MB)
    b = create_active(admin_api, name="mb", memory_size=128 * MB)
    a.refresh_from_db()
    b.refresh_from_db()
    src = redis.Redis(port=a.port, username="admin", password=a.internal_password)
    dst = redis.Redis(port=b.port, username="admin", password=b.internal_password)
    populate(src, 2000)
    response = admin_api.put(
        f"/v1/bdbs/{b.pk}", {"replica_sources": [{"bdb_uid": a.pk}]}, format="json"
    )
    assert response.status_code == 200, response.content
    seen: list[tuple[float, float]] = []

    def scraped() -> tuple[float, float]:
        figures = _totals(admin_api, b)
        if seen:
            assert figures[0] >= seen[-1][0] and figures[1] >= seen[-1][1], (seen[-1], figures)
        seen.append(figures)
        return figures

    with BatchLoad(src) as load:
        wait_for(lambda: load.n > 500 and scraped()[1] > 0, what="commands counted")
        before_kill = scraped()
        live_worker.kill_sync()
        wait_for(lambda: not control.lock_held(b.pk), what="the dead job's lock to expire")
        scraped()  # no job: the totals stay where they were
        live_worker.start_sync()
        wait_for(lambda: control.lock_held(b.pk), what="reconcile to start a new job")
        wait_for(
            lambda: scraped()[1] > before_kill[1] and seen[-1][0] > before_kill[0],
            what="the new job's counts added to the old totals",
        )
    caught_up(src, dst)
    after = scraped()
    assert after[0] > before_kill[0] and after[1] > before_kill[1]
    assert len(seen) >= 4


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "replica-of.json"
# A metric name in a PromQL expression: followed by `{`, `[` or the end, never a function call.
_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$)")
_PROMQL_WORDS = {"rate", "label_values", "sum", "max", "by"}


@pytest.mark.django_db
def test_the_grafana_dashboard_queries_only_what_metrics_exports(
    admin_api: Any, admin_user: User, database: Database
) -> None:
    replica_services.replica_sources_set(
        actor=admin_user, destination=database, sources=[SourceInput(uri="redis://192.0.2.1:6379")]
    )
    types, _ = scrape(admin_api)
    # The families declared, also those with no sample now (no lag yet); counters as `…_total`.
    served = set(types) | {f"{name}_total" for name, kind in types.items() if kind == "counter"}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {
        name
        for expr in exprs
        # Selectors, strings and label_values' label argument are no metric names.
        for name in _METRIC.findall(re.sub(r'\{[^}]*\}|"[^"]*"|,\s*\w+\)', "{}", expr))
        if name not in _PROMQL_WORDS and not name.startswith("$")
    }
    assert used >= {
        "replica_src_ingress_bytes",
        "database_syncer_lag_ms",
        "bdb_replicaof_syncer_status",
    }
    assert used <= served, used - served
