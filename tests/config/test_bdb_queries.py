"""GET /v1/bdbs reads every database with its Replica Of fields in a fixed number of queries."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from console import services as console_services
from replication import services
from replication.sources import SourceInput

MB = 1024 * 1024


def _add(admin_user, first: int, count: int) -> None:
    """`count` databases; every other one copies from the one made before it."""
    previous = None
    for i in range(first, first + count):
        db = console_services.database_create(actor=admin_user, name=f"d{i}", memory_size=MB)
        if previous is not None and i % 2:
            source = SourceInput(source_database_uid=previous.pk)
            services.replica_sources_set(actor=admin_user, destination=db, sources=[source])
        previous = db


def _queries_of_the_list(admin_api, expected_rows: int) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = admin_api.get("/v1/bdbs")
    assert response.status_code == 200
    body = response.json()
    assert len(body) == expected_rows
    assert sum(len(b["replica_sources"]) for b in body) == expected_rows // 2
    return len(ctx.captured_queries)


def test_list_query_count_does_not_grow_with_the_databases(admin_api, admin_user):
    _add(admin_user, 0, 2)
    few = _queries_of_the_list(admin_api, 2)
    _add(admin_user, 2, 8)
    assert _queries_of_the_list(admin_api, 10) == few
