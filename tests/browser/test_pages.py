"""The pages an operator asked for (issue 15), in Chromium against real workers and servers:
the Add-source dialog's validation, the charts' range selector, progress during a full sync, the
source side's destinations and connected replicas, and the delete warning."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from console.models import Database
from replication import control
from replication import services as replica_services
from replication.endpoints import internal_source_url
from replication.live import LiveSource
from replication.models import ReplicaOf
from replication.sources import SourceInput
from tests.support.browser import off_loop, sign_in
from tests.support.databases import create_active, native_replica
from tests.support.personas import ADMIN_PASSWORD
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def edit_page(new_page: Any, db: Database) -> Any:
    """A new admin's tab on Database → Edit of `db`."""
    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/databases/{db.pk}/edit/")
    page.get_by_role("group", name="Replica Of").wait_for()
    return page


def counter(page: Any) -> str:
    return str(page.locator("[data-source-counter]").inner_text())


def add_internal(page: Any, name: str) -> Any:
    """+ Add source database, Current cluster, `name`, Add source; returns the dialog."""
    page.get_by_role("button", name="+ Add source database").click()
    dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
    dialog.get_by_label("Current cluster").check()
    dialog.get_by_role("radio", name=re.compile(name)).check()
    dialog.get_by_role("button", name="Add source").click()
    dialog.wait_for(state="hidden")
    return dialog


def edit_rows(page: Any) -> list[str]:
    return [
        str(t) for t in page.locator("[data-replica-edit] li.source .source-name").all_inner_texts()
    ]


def test_the_add_source_dialog_counts_refuses_duplicates_and_a_refused_save_keeps_the_rows(
    live_worker: Any, admin_api: Any, admin_user: Any, new_page: Any, shot: Any
) -> None:
    a = create_active(admin_api, name="alpha")
    b = create_active(admin_api, name="bravo")
    c = create_active(admin_api, name="charlie")
    page = edit_page(new_page, b)
    assert counter(page) == "0 of 32"

    # alpha, from this cluster: 1 of 32; alpha again is disabled, with the reason.
    dialog = add_internal(page, "alpha")
    assert counter(page) == "1 of 32"
    page.get_by_role("button", name="+ Add source database").click()
    again = dialog.locator("label.candidate", has_text="alpha")
    assert again.get_by_role("radio").is_disabled()
    assert "already a source" in again.inner_text()

    # alpha once more, as an external URL (its own host:port): refused in the dialog.
    dialog.get_by_label("External").check()
    dialog.get_by_label("Source URL").fill(internal_source_url(a))
    dialog.get_by_role("button", name="Add source").click()
    refusal = dialog.locator(".field-error", has_text="already a source of bravo")
    refusal.wait_for()
    shot(page, "duplicate-refused")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Cancel").click()
    assert counter(page) == "1 of 32" and edit_rows(page) == ["alpha"]

    # charlie too: 2 of 32. Meanwhile charlie is made a replica of bravo: Save is refused (a
    # cycle), and the page comes back with both rows, the counter, and the reason.
    add_internal(page, "charlie")
    assert counter(page) == "2 of 32"
    off_loop(
        replica_services.replica_sources_set,
        actor=admin_user,
        destination=c,
        sources=[SourceInput(source_database_uid=b.pk)],
    )
    page.get_by_role("button", name="Save").click()
    page.get_by_role("dialog", name="Save and flush?").get_by_role(
        "button", name="Save and flush"
    ).click()
    page.locator("[data-replica-edit] .field-error", has_text="cycle").first.wait_for()
    assert edit_rows(page) == ["alpha", "charlie"]
    assert counter(page) == "2 of 32"
    shot(page, "refused-save-keeps-rows")
    assert not b.replica_sources.exists()


def test_the_32nd_source_fills_the_counter_and_a_33rd_is_refused_while_adding(
    live_worker: Any, admin_api: Any, admin_user: Any, new_page: Any, shot: Any
) -> None:
    a = create_active(admin_api, name="alpha")
    b = create_active(admin_api, name="bravo")
    # 31 external sources saved (documentation addresses), the sync stopped: no job runs.
    off_loop(
        replica_services.replica_sources_set,
        actor=admin_user,
        destination=b,
        sources=[SourceInput(uri=f"redis://192.0.2.{n}:6379") for n in range(1, 32)],
    )
    off_loop(replica_services.replica_sync_set, actor=admin_user, destination=b, state="stopped")
    page = edit_page(new_page, b)
    assert counter(page) == "31 of 32"
    dialog = add_internal(page, "alpha")
    assert counter(page) == "32 of 32"
    # The 33rd: the dialog does not open, the limit is said beside the button.
    page.get_by_role("button", name="+ Add source database").click()
    limit = page.locator("[data-limit-error]")
    limit.wait_for()
    assert "at most 32 sources: remove one" in limit.inner_text()
    assert not dialog.is_visible()
    shot(page, "limit")
    # Removing one makes room again.
    page.get_by_role("button", name="Remove source 192.0.2.1:6379").click()
    assert counter(page) == "31 of 32" and limit.is_hidden()
    assert a.pk  # alpha is still the 32nd row
    assert edit_rows(page)[-1] == "alpha"


def seed(uid: int, start: float, seconds: int, lag: int) -> None:
    """One sample a second of source 1 from `start` (as a sync job writes them)."""
    for second in range(seconds):
        control.stats_append(
            uid,
            {
                1: {
                    "t": start + second,
                    "lag": lag,
                    "commands": 5,
                    "ingress_bytes": 200,
                    "ingress_bytes_decompressed": 200,
                }
            },
        )


def chart_line(page: Any, key: str) -> Any:
    return page.locator(f"[data-replica-panel] li.source .chart-line[data-key={key}]").first


def test_the_range_selector_fetches_and_draws_each_range(
    live_worker: Any, admin_api: Any, admin_user: Any, new_page: Any, shot: Any
) -> None:
    b = create_active(admin_api, name="bravo")
    off_loop(
        replica_services.replica_sources_set,
        actor=admin_user,
        destination=b,
        sources=[SourceInput(uri="redis://192.0.2.1:6379")],
    )
    off_loop(replica_services.replica_sync_set, actor=admin_user, destination=b, state="paused")
    wait_for(lambda: not control.lock_held(b.pk), what="no sync job to hold bravo")
    control.history_clear(b.pk, range(1, 33))
    # Its last applied command two days ago: "last update" shows the date, not only a time.
    two_days_ago = datetime.now(tz=UTC) - timedelta(days=2)
    replica = ReplicaOf.objects.get(destination=b)
    replica_services.replica_sources_live_save(
        destination_id=b.pk,
        generation=replica.generation,
        sources=[
            LiveSource(
                uid=1,
                name="192.0.2.1:6379",
                source_database_id=None,
                status="in-sync",
                lag=100,
                last_update=two_days_ago,
            )
        ],
    )
    # What the sync wrote before it was stopped: 30 min six hours ago, 10 min from 40 min ago,
    # and 5 min that ended 3 min ago; nothing in between (it was paused), nothing since.
    now = time.time()
    seed(b.pk, now - 6 * 3600, 1800, lag=900)
    seed(b.pk, now - 40 * 60, 600, lag=300)
    seed(b.pk, now - 480, 300, lag=100)

    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/databases/{b.pk}/")
    panel = page.locator("[data-replica-panel]")
    lag = chart_line(page, "lag")

    def loaded(key: str, interval: str) -> None:
        wait_for(
            lambda: panel.get_attribute("data-chart-loaded") == f"{key}:{interval}",
            what=f"the {key} range to be drawn",
        )

    def points() -> int:
        return int(lag.get_attribute("data-points") or 0)

    def segments() -> int:
        return int(lag.get_attribute("data-segments") or 0)

    loaded("15m", "1sec")
    detail = page.locator("[data-replica-panel] [data-source-detail]").first.inner_text()
    berlin = two_days_ago.astimezone(ZoneInfo("Europe/Berlin"))  # the browser's zone
    assert detail == f"last update {berlin:%Y-%m-%d %H:%M:%S}", detail
    assert 295 <= points() <= 301 and segments() == 1
    assert "max 100" in page.locator("[data-replica-panel] .chart").first.inner_text()
    shot(page, "range-15m")

    expected = {
        "1h": ("10sec", range(88, 94), 2, "max 300"),
        "12h": ("1min", range(43, 49), 3, "max 900"),
        "1w": ("15min", range(3, 8), None, "max 900"),
    }
    labels = {"1h": "1 h", "12h": "12 h", "1w": "1 week"}
    for key, (interval, count, parts, top) in expected.items():
        with page.expect_request(lambda r, i=interval: f"interval={i}" in r.url):
            page.get_by_role("button", name=labels[key], exact=True).click()
        loaded(key, interval)
        assert (
            page.get_by_role("button", name=labels[key], exact=True).get_attribute("aria-pressed")
            == "true"
        )
        assert points() in count, (key, points())
        if parts is not None:
            assert segments() == parts, (key, segments())
        assert top in page.locator("[data-replica-panel] .chart").first.inner_text()
        axis = page.locator("[data-replica-panel] .chart-axis").first.inner_text()
        assert f"{labels[key]} ago" in axis
        shot(page, f"range-{key}")
    # Paused: the newest point is 3 minutes old; the chart says so, it draws no 0 since.
    page.get_by_role("button", name="15 min", exact=True).click()
    loaded("15m", "1sec")
    ingress = chart_line(page, "wire")
    assert int(ingress.get_attribute("data-points") or 0) >= 295
    assert points() <= 301 and segments() == 1
    assert "no data since" in page.locator("[data-replica-panel] .chart").first.inner_text()


def test_the_source_side_names_destinations_and_lists_connected_replicas(
    live_worker: Any, admin_api: Any, admin_user: Any, new_page: Any, shot: Any
) -> None:
    a = create_active(admin_api, name="alpha")
    b = create_active(admin_api, name="bravo")
    with redis.Redis(port=a.port, username="admin", password=a.internal_password) as client:
        client.mset({f"k{i}": "v" * 50 for i in range(2000)})
    off_loop(
        replica_services.replica_sources_set,
        actor=admin_user,
        destination=b,
        sources=[SourceInput(source_database_uid=a.pk)],
    )
    native = native_replica(a)
    try:
        page = new_page()
        sign_in(page, "admin", ADMIN_PASSWORD)

        def table_text() -> str:
            page.goto(f"/databases/{a.pk}/")
            table = page.locator("[data-connected-replicas]")
            return str(table.inner_text()) if table.count() else ""

        wait_for(
            lambda: f"127.0.0.1:{native.port}" in table_text(),
            what="the native replica in alpha's list",
        )
        section = page.get_by_role("region", name="Use this database as a source")
        assert section.locator("[data-source-destinations]").inner_text() == "bravo"
        assert (
            section.get_by_role("link", name="bravo").get_attribute("href") == f"/databases/{b.pk}/"
        )
        rows = page.locator("[data-connected-replicas] tbody tr")
        native_row = rows.filter(has_text=f"127.0.0.1:{native.port}")
        assert "online" in native_row.inner_text()
        assert re.search(r"\d+ bytes", native_row.inner_text())
        # bravo's sync job is a replica of alpha as well, once it streams.
        wait_for(lambda: (table_text(), rows.count())[1] >= 2, what="bravo's syncer in the list")
        section.scroll_into_view_if_needed()
        shot(page, "source-side")
    finally:
        native.stop()
    # After the native replica is gone, the list no longer has it.
    wait_for(lambda: f"127.0.0.1:{native.port}" not in table_text(), what="the native replica gone")

    # Deleting alpha warns first and names bravo.
    page.goto(f"/databases/{a.pk}/delete/")
    warning = page.locator("[data-delete-source-warning]")
    assert "alpha is a Replica Of source of bravo" in warning.inner_text()
    shot(page, "delete-warning")
    page.get_by_role("button", name="Delete database").click()
    page.locator(".alert-error", has_text="bravo").wait_for()
    assert Database.objects.filter(pk=a.pk).exists()


def test_a_full_sync_shows_bytes_keys_rate_and_eta_beside_the_percent(
    live_worker: Any, admin_api: Any, admin_user: Any, new_page: Any, shot: Any
) -> None:
    a = create_active(admin_api, name="alpha", memory_size=512 * 1024 * 1024)
    b = create_active(admin_api, name="bravo", memory_size=512 * 1024 * 1024)
    with redis.Redis(port=a.port, username="admin", password=a.internal_password) as client:
        for start in range(0, 600_000, 20_000):
            client.mset({f"key:{i}": f"value-{i:08d}" * 8 for i in range(start, start + 20_000)})
    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/databases/{b.pk}/")
    page.locator("[data-live-indicator][data-state=live]").wait_for()
    # Every figure the row shows while it syncs, as rendered.
    page.evaluate(
        """() => { window.__figures = [];
           new MutationObserver(() => document.querySelectorAll("[data-progress-figures]")
             .forEach((el) => window.__figures.push(el.textContent)))
             .observe(document.body, { subtree: true, childList: true, characterData: true }); }"""
    )
    off_loop(
        replica_services.replica_sources_set,
        actor=admin_user,
        destination=b,
        sources=[SourceInput(source_database_uid=a.pk)],
    )
    full = re.compile(
        r"^[\d.]+ (bytes|KB|MB) (of [\d.]+ (bytes|KB|MB)|received) · [\d,]+ keys · "
        r"[\d.,]+ (bytes|KB|MB|keys)/s · ETA \d+ (s|min)"
    )

    def figures() -> list[str]:
        return list(page.evaluate("window.__figures"))

    def seen_full() -> bool:
        shown = page.locator("[data-progress-figures]")
        if shown.count() and full.match(shown.first.inner_text()):
            shot(page, "full-sync-progress")  # the walk's picture, when everything is there
        return any(full.match(f) for f in figures())

    wait_for(seen_full, what="bytes, keys, rate and ETA during the full sync", interval=0.2)
    wait_for(
        lambda: (
            page.locator("[data-replica-panel] [data-source-status]").first.inner_text() == "Synced"
        ),
        what="bravo to be synced",
        timeout=120,
    )
    counts = [re.search(r"([\d,]+) keys ·", f) for f in figures()]
    keys = [int(m.group(1).replace(",", "")) for m in counts if m]
    assert keys == sorted(keys) and keys[-1] > 0, keys
