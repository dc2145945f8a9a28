"""Replacing the cluster's certificates while a sync job runs over TLS: the source database
serves the new proxy certificate and trusts the new syncer certificate (no restart), and the
running job's next connection presents and trusts the new ones (no stop, no restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from console.models import Database
from replication.models import ReplicaOf
from tests.support.databases import database_status, tls_replica_pair
from tests.support.pki import make_certificate
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def job_file(dest: Database, name: str) -> str:
    """A TLS file of the running job of `dest` (its private directory), or ""."""
    for d in (Path(settings.VAR_DIR) / "run" / "jobs").glob(f"job-{dest.pk}-*"):
        path = d / name
        if path.exists():
            return path.read_text()
    return ""


def test_replaced_certificates_reach_a_running_tls_sync_without_a_restart(
    admin_api: Any, live_worker: Any
) -> None:
    a, b, src = tls_replica_pair(admin_api, keys=1000)

    def state() -> dict[str, Any]:
        body: dict[str, Any] = admin_api.get(f"/v1/bdbs/{b.pk}").json()
        return body

    generation = ReplicaOf.objects.get(destination=b).generation

    for kind in ("syncer", "proxy"):
        new = make_certificate(common_name=f"{kind}.new.local")
        body = {"name": kind, "certificate": new.certificate, "key": new.key}
        resp = admin_api.put("/v1/cluster/certificates", body, format="json")
        assert resp.status_code == 200, resp.content
        wait_for(lambda: database_status(a.pk) == "active", what="a to take the new files")
        # The running job wrote the new material for its next connections.
        wanted = "source-1.crt" if kind == "syncer" else "source-1-server.crt"
        wait_for(
            lambda name=wanted, pem=new.certificate: job_file(b, name).strip() == pem.strip(),
            what=f"the job's {wanted} to be the new {kind} certificate",
        )
    # The old syncer certificate is no longer trusted by a: the link must come back with the new.
    src.execute_command("CLIENT", "KILL", "TYPE", "replica")
    src.set("after", "1")
    b.refresh_from_db()
    dst = redis.Redis(port=b.port, username="admin", password=b.internal_password)
    wait_for(lambda: dst.get("after") == b"1", what="the write after the replacement on b")
    replica_of = ReplicaOf.objects.get(destination=b)
    assert (replica_of.replica_sync, replica_of.generation) == ("enabled", generation)
    assert state()["replica_sources"][0]["last_error"] == ""
