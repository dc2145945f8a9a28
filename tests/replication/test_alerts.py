"""Replica Of alerts: the hysteresis (pure), the API and pages, and a real run: a lag above the
threshold behind a throttled link raises `replica_src_high_syncer_lag`, catching up clears it;
each change is audited, e-mailed (Django's file backend in the real worker) and POSTed to a
webhook (a local HTTP server that refuses the first tries: delivered with backoff)."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.urls import reverse

from console.models import AuditEntry, Database, User
from replication import services as replica_services
from replication.alerts import CLEAR_SAMPLES, RAISE_SAMPLES, AlertTracker, Change, Thresholds
from replication.models import AlertName, ReplicaAlert
from replication.sources import SourceInput
from tests.support.databases import create_active
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for
from tests.support.workers import mail_dir

LAG = AlertName.HIGH_SYNCER_LAG.value
CONN = AlertName.CONNECTION_ERROR.value


# ---------------------------------------------------------------- hysteresis (pure)


def _feed(tracker: AlertTracker, lags: list[int | None], status: str = "in-sync") -> list[Any]:
    thresholds = Thresholds(lag_ms=1000)
    out = []
    for lag in lags:
        out.append(tracker.sample(source_uid=1, status=status, lag=lag, thresholds=thresholds))
    return out


def test_lag_raises_after_samples_in_a_row_and_clears_below_the_ratio() -> None:
    tracker = AlertTracker()
    # Above, below, above...: never RAISE_SAMPLES in a row, never raised.
    assert all(c == [] for c in _feed(tracker, [1500, 900, 1500, 900, 1500, 900]))
    changes = _feed(tracker, [1500] * RAISE_SAMPLES)
    assert [c for step in changes for c in step] == [
        Change(1, LAG, True, {"lag": 1500, "threshold": 1000})
    ]
    # Back under the threshold but above 80% of it: stays raised (hysteresis).
    assert all(c == [] for c in _feed(tracker, [900] * 10))
    cleared = [c for step in _feed(tracker, [700] * CLEAR_SAMPLES) for c in step]
    assert [(c.name, c.state) for c in cleared] == [(LAG, False)]
    assert all(c == [] for c in _feed(tracker, [None, None]))  # an unknown lag changes nothing


def test_connection_error_follows_out_of_sync() -> None:
    tracker = AlertTracker()
    thresholds = Thresholds()
    states = []
    for status in ["out-of-sync"] * RAISE_SAMPLES + ["syncing"] * 5 + ["in-sync"] * CLEAR_SAMPLES:
        for c in tracker.sample(source_uid=2, status=status, lag=None, thresholds=thresholds):
            states.append((c.name, c.state))
    assert states == [(CONN, True), (CONN, False)]


def test_a_job_goes_on_from_the_saved_states() -> None:
    tracker = AlertTracker(raised={(1, LAG)})
    assert all(c == [] for c in _feed(tracker, [5000] * 5))  # already raised: not again
    assert [(c.name, c.state) for s in _feed(tracker, [10] * 3) for c in s] == [(LAG, False)]


# ---------------------------------------------------------------- API and pages


def _destination(admin_user: User, database: Database) -> Database:
    replica_services.replica_sources_set(
        actor=admin_user, destination=database, sources=[SourceInput(uri="redis://192.0.2.1:6379")]
    )
    return database


@pytest.mark.django_db
def test_alert_api_settings_banner_and_page(
    admin_api: Any, viewer_api: Any, admin_client: Any, admin_user: User, database: Database
) -> None:
    dest = _destination(admin_user, database)
    url = f"/v1/bdbs/{dest.pk}/replica_alert_settings"
    body = {
        "bdb_replica_src_high_syncer_lag": {"enabled": True, "threshold": 250},
        "email_to": "ops@example.org",
        "webhook_url": "http://127.0.0.1:9/hook?token=s3cret-token",
    }
    response = admin_api.put(url, body, format="json")
    assert response.status_code == 200, response.content
    got = viewer_api.get(url).json()
    assert got["bdb_replica_src_high_syncer_lag"] == {"enabled": True, "threshold": "250"}
    assert got["webhook_configured"] is True and "s3cret-token" not in str(got)
    assert viewer_api.put(url, body, format="json").status_code == 403
    bad = admin_api.put(url, {"webhook_url": "ftp://x"}, format="json")
    assert bad.status_code == 400 and "webhook_url" in bad.json()
    assert "s3cret-token" not in str(list(AuditEntry.objects.values_list("detail", flat=True)))

    states = viewer_api.get(f"/v1/bdbs/replica_sources/alerts/{dest.pk}").json()
    assert set(states["1"]) == {a.value for a in AlertName}
    assert states["1"][LAG] == {
        "enabled": True,
        "state": False,
        "severity": "WARNING",
        "threshold": "250",
    }
    replica_services.alert_changes_save(  # one raise, as the sync job saves it
        destination_id=dest.pk, changes=[Change(1, LAG, True, {"lag": 900, "threshold": 250})]
    )
    one = viewer_api.get(f"/v1/bdbs/replica_sources/alerts/{dest.pk}/1/{LAG}").json()
    assert one["state"] is True and one["change_value"]["lag"] == 900
    assert isinstance(one["change_time"], str)
    every = viewer_api.get("/v1/bdbs/replica_sources/alerts").json()
    assert every[str(dest.pk)]["1"][LAG]["state"] is True
    assert viewer_api.get(f"/v1/bdbs/replica_sources/alerts/{dest.pk}/7").status_code == 404
    assert viewer_api.get(f"/v1/bdbs/replica_sources/alerts/{dest.pk}/1/nope").status_code == 404

    page = admin_client.get(reverse("database-detail", kwargs={"uid": dest.pk})).content.decode()
    assert "1 alert raised" in page and "High syncer lag" in page and "lag 900 ms" in page
    alerts = admin_client.get(reverse("alert-list")).content.decode()
    assert 'data-state="raised"' in alerts and dest.name in alerts
    assert AuditEntry.objects.filter(action="alert.raised", object_id=str(dest.pk)).count() == 1


# ---------------------------------------------------------------- a real run


class _HookServer(ThreadingHTTPServer):
    """A webhook receiver that refuses its first `refuse` calls with 503."""

    def __init__(self, refuse: int) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.received: list[dict[str, Any]] = []
        self.refuse = refuse


class _Hook(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.refuse > 0:
            self.server.refuse -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.server.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[_HookServer]:
    server = _HookServer(refuse=2)  # the first two tries fail: delivered by the retries
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _mails_about(name: str) -> list[email.message.Message]:
    found = []
    for path in sorted(mail_dir().glob("*.log")) if mail_dir().exists() else []:
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip() and name in chunk:
                found.append(email.message_from_string(chunk.strip()))
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_high_lag_behind_a_throttled_link_is_raised_delivered_and_cleared(
    admin_api: Any, live_worker: Any, webhook: _HookServer
) -> None:
    source = RedisServer().start()
    try:
        _lag_alert_run(admin_api, webhook, source)
    finally:
        source.stop()


def _lag_alert_run(admin_api: Any, webhook: _HookServer, source: RedisServer) -> None:
    b = create_active(admin_api, name="alerted")
    hook_url = f"http://127.0.0.1:{webhook.server_address[1]}/alerts"
    settings_body = {
        "bdb_replica_src_high_syncer_lag": {"enabled": True, "threshold": 500},
        "email_to": "oncall@example.org",
        "webhook_url": hook_url,
    }
    assert (
        admin_api.put(
            f"/v1/bdbs/{b.pk}/replica_alert_settings", settings_body, format="json"
        ).status_code
        == 200
    )
    src = source.client()
    with TcpProxy(source.port) as proxy:
        resp = admin_api.put(
            f"/v1/bdbs/{b.pk}",
            {"replica_sources": [{"uri": f"redis://127.0.0.1:{proxy.port}"}]},
            format="json",
        )
        assert resp.status_code == 200, resp.content
        wait_for(
            lambda: (
                admin_api.get(f"/v1/bdbs/{b.pk}").json()["replica_sources"][0]["status"]
                == "in-sync"
            ),
            what="in sync",
        )
        proxy.throttle(20_000)  # 20 kB/s: the writes below take far longer to come through
        stop = threading.Event()

        def write() -> None:
            n = 0
            while not stop.is_set():
                src.set(f"k{n % 500}", "x" * 1000)
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            alert = wait_for(
                lambda: ReplicaAlert.objects.filter(destination=b, name=LAG, state=True).first(),
                what="the high lag alert to be raised",
            )
        finally:
            stop.set()
            writer.join()
        assert alert.change_value["threshold"] == 500 and alert.change_value["lag"] > 500
        proxy.throttle(None)
        wait_for(
            lambda: ReplicaAlert.objects.filter(destination=b, name=LAG, state=False).exists(),
            what="the high lag alert to be cleared once caught up",
        )
    raised = AuditEntry.objects.filter(action="alert.raised", object_id=str(b.pk))
    cleared = AuditEntry.objects.filter(action="alert.cleared", object_id=str(b.pk))
    assert raised.filter(detail__startswith=LAG).count() == 1
    assert cleared.filter(detail__startswith=LAG).count() == 1
    # Delivered: the webhook (after two refused tries, retried with backoff) and the e-mails.
    wait_for(
        lambda: (
            [(p["alert"], p["state"]) for p in webhook.received if p["alert"] == LAG]
            == [(LAG, "raised"), (LAG, "cleared")]
        ),
        what=f"both webhook calls (got {webhook.received})",
    )
    hook = webhook.received[0]
    assert hook["bdb"] == b.pk and hook["bdb_name"] == "alerted" and hook["source"] == 1
    assert hook["cluster"] == "cluster.local" and hook["change_value"]["threshold"] == 500
    assert webhook.refuse == 0
    mails = wait_for(
        lambda: (
            (m := _mails_about(f"{LAG} cleared on alerted"))
            and _mails_about(f"{LAG} raised on alerted")
            and m
        ),
        what="the raise and clear e-mails",
    )
    assert mails[0]["To"] == "oncall@example.org"
    body = str(mails[0].get_payload())
    assert "bdb_name: alerted" in body and "'threshold': 500" in body


@pytest.mark.django_db
def test_the_lag_threshold_is_redis_enterprise_s_string(
    admin_api: Any, admin_user: User, database: Database
) -> None:
    dest = _destination(admin_user, database)
    url = f"/v1/bdbs/{dest.pk}/replica_alert_settings"
    body = {"bdb_replica_src_high_syncer_lag": {"threshold": "300"}}
    assert admin_api.put(url, body, format="json").json()["bdb_replica_src_high_syncer_lag"] == {
        "enabled": True,
        "threshold": "300",
    }
    for bad in ("abc", True, 0, "-5", 10**12, "\uff13"):  # the last: a full-width 3
        response = admin_api.put(
            url, {"bdb_replica_src_high_syncer_lag": {"threshold": bad}}, format="json"
        )
        assert response.status_code == 400, bad
    assert admin_api.get(url).json()["bdb_replica_src_high_syncer_lag"]["threshold"] == "300"
    schema = admin_api.get("/v1/schema?format=json").json()["components"]["schemas"]
    out = schema["_EnabledThresholdOut"]["properties"]["threshold"]
    assert out["type"] == "string"
