"""The Users page and the Alerts page in Chromium: an admin adds a viewer who signs in and sees
no secrets, changes a password, disables and deletes; raised and cleared alerts on the Alerts
page and as a banner on the database page."""

from __future__ import annotations

from typing import Any

from console import services as console_services
from console.models import User
from replication import services as replica_services
from replication.alerts import Change
from replication.models import AlertName
from tests.support.browser import off_loop, sign_in
from tests.support.pages import MB, activate
from tests.support.personas import ADMIN_PASSWORD


def user_row(page: Any, name: str) -> Any:
    return page.locator(f"tr[data-user='{name}']")


def test_users_page_adds_a_viewer_who_signs_in_and_sees_no_secrets(
    admin: Any, new_page: Any, shot: Any
) -> None:
    db = activate(
        console_services.database_create(
            actor=admin, name="orders", memory_size=100 * MB, password="app-secret-4471"
        )
    )
    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/users/")
    form = page.get_by_role("form", name="Add user")
    form.get_by_label("Name").fill("olga")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_label("Password").fill("olga-first-pass-93")
    form.get_by_role("button", name="Add user").click()
    user_row(page, "olga").wait_for()
    assert "Viewer" in user_row(page, "olga").inner_text()
    shot(page, "users")

    # A password that is too short is refused beside its field, nothing changed.
    row = user_row(page, "olga")
    row.locator("summary", has_text="Change password").click()
    row.get_by_label("New password for olga").fill("x")
    row.get_by_role("button", name="Set password").click()
    user_row(page, "olga").locator(".field-error").wait_for()
    row = user_row(page, "olga")
    row.get_by_label("New password for olga").fill("olga-second-pass-57")
    row.get_by_role("button", name="Set password").click()
    page.locator(".message", has_text="Password of olga changed").wait_for()

    # olga signs in with the new password: she reads the database but no secret, and no
    # Users page.
    viewer = new_page()
    sign_in(viewer, "olga", "olga-second-pass-57")
    viewer.goto(f"/databases/{db.pk}/")
    text = viewer.content()
    assert "app-secret-4471" not in text and db.internal_password not in text
    assert viewer.get_by_role("button", name="Get Replica Of source URL").count() == 0
    assert viewer.get_by_role("link", name="Users").count() == 0
    assert viewer.goto("/users/").status == 403

    # Disabled: her next sign-in is refused; deleted: gone from the list.
    user_row(page, "olga").get_by_role("button", name="Disable").click()
    page.locator(".message", has_text="User olga updated").wait_for()
    assert "Disabled" in user_row(page, "olga").inner_text()
    other = new_page()
    other.goto("/login/")
    other.get_by_label("User name").fill("olga")
    other.get_by_label("Password").fill("olga-second-pass-57")
    other.get_by_role("button", name="Sign in").click()
    other.locator(".alert-error, .field-error, [role=alert]").first.wait_for()
    assert "/login/" in other.url
    user_row(page, "olga").get_by_role("button", name="Delete olga").click()
    page.locator(".message", has_text="User olga deleted").wait_for()
    assert user_row(page, "olga").count() == 0
    assert not User.objects.filter(username="olga").exists()

    # The last admin stays.
    user_row(page, "admin").get_by_role("button", name="Delete admin").click()
    assert "admin" in page.locator(".message-error").inner_text()
    assert User.objects.filter(username="admin").exists()


def test_alerts_page_and_banner_show_raised_and_cleared_alerts(
    admin: Any, new_page: Any, shot: Any
) -> None:
    db = activate(
        console_services.database_create(actor=admin, name="replica", memory_size=100 * MB)
    )
    lag = AlertName.HIGH_SYNCER_LAG.value
    conn = AlertName.CONNECTION_ERROR.value
    off_loop(
        replica_services.alert_changes_save,
        destination_id=db.pk,
        changes=[
            Change(1, lag, True, {"lag": 4200, "threshold": 1000}),
            Change(2, conn, True, {"status": "out-of-sync"}),
        ],
    )
    off_loop(
        replica_services.alert_changes_save,
        destination_id=db.pk,
        changes=[Change(2, conn, False, {"status": "in-sync"})],
    )
    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/alerts/")
    table = page.get_by_role("table", name="Alerts")
    raised = table.locator(f"tr[data-alert='{lag}']")
    assert raised.get_attribute("data-state") == "raised"
    assert "Raised" in raised.inner_text() and "lag=4200" in raised.inner_text()
    cleared = table.locator(f"tr[data-alert='{conn}']")
    assert cleared.get_attribute("data-state") == "cleared" and "Cleared" in cleared.inner_text()
    shot(page, "alerts")
    raised.get_by_role("link", name="replica").click()
    banner = page.locator("[data-alerts]")
    assert "1 alert raised" in banner.inner_text()
    assert "lag 4200 ms, threshold 1000 ms" in banner.inner_text()
    assert "source 2" not in banner.inner_text()
    shot(page, "alert-banner")
