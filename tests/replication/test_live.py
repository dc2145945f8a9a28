"""The one live status shape: the API, the socket snapshot and the job's push agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console import services as console_services
from replication import selectors, services
from replication.live import (
    LiveSource,
    LiveSourceSerializer,
    LiveStatus,
    aggregate_status,
    live_message,
    source_status,
)
from replication.serializers import RE_FIELDS_ABSENT_WHEN_UNKNOWN, ReplicaSourceSerializer
from replication.sources import SourceInput
from replication.syncer.status import Phase

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "disabled"),
        (["in-sync"], "in-sync"),
        (["in-sync", "syncing"], "syncing"),
        (["syncing", "out-of-sync", "in-sync"], "out-of-sync"),
    ],
)
def test_a_destination_shows_the_worst_of_its_sources(statuses, expected):
    assert aggregate_status("enabled", statuses) == expected


def test_not_enabled_shows_the_state_itself():
    assert aggregate_status("paused", ["in-sync"]) == "paused"
    assert aggregate_status("stopped", ["out-of-sync"]) == "stopped"
    assert aggregate_status("stopped", []) == "disabled"


@pytest.mark.parametrize(
    ("phase", "retries", "expected"),
    [
        (Phase.IN_SYNC, 3, "in-sync"),
        (Phase.SYNCING, 0, "syncing"),
        (Phase.CONNECTING, 0, "syncing"),
        (Phase.CONNECTING, 1, "out-of-sync"),
        (Phase.OUT_OF_SYNC, 0, "out-of-sync"),
        (Phase.STOPPED, 0, "syncing"),
        (Phase.STOPPED, 2, "out-of-sync"),
    ],
)
def test_source_status_from_the_syncer_phase(phase, retries, expected):
    assert source_status(phase, retries) == expected


def test_rows_and_job_values_serialize_to_the_same_shape(admin_user):
    a = console_services.database_create(actor=admin_user, name="a", memory_size=8 * MB)
    b = console_services.database_create(actor=admin_user, name="b", memory_size=8 * MB)
    services.replica_sources_set(
        actor=admin_user, destination=b, sources=[SourceInput(source_database_uid=a.pk)]
    )
    from_rows = selectors.database_live_status(b)
    pushed = live_message(
        LiveStatus(
            database=b.pk,
            name=b.name,
            replica_sync="enabled",
            last_error="",
            last_error_kind="",
            destinations=0,
            sources=[
                LiveSource(
                    uid=1,
                    name="a",
                    source_database_id=a.pk,
                    status="in-sync",
                    lag=3,
                    last_update=datetime(2026, 12, 1, tzinfo=UTC),
                )
            ],
        )
    )
    assert from_rows.keys() == pushed.keys()
    assert from_rows["sources"][0].keys() == pushed["sources"][0].keys()
    assert from_rows["sources"][0]["name"] == pushed["sources"][0]["name"] == "a"
    assert from_rows["sources"][0]["bdb_uid"] == a.pk
    assert pushed["sources"][0]["last_update"].startswith("2026-12-01T00:00:00")
    # The API's source carries every live field, plus its configuration; those Redis Enterprise
    # types as integer or string are left out while unknown (never null), as here before a sync.
    api = ReplicaSourceSerializer(selectors.replica_sources_of(b)[0]).data
    absent = set(RE_FIELDS_ABSENT_WHEN_UNKNOWN)
    assert set(LiveSourceSerializer().fields) - absent <= set(api)
    assert not absent & set(api)
    assert {"uri", "compression", "encryption", "server_cert"} <= set(api)
