"""The pages of a database, which show the cluster domain's side of it and its Replica Of side:
the database list (with Replica Of badges), a database's page (with the live Replica Of panel),
Database → Edit (memory, password and the Replica Of sources in one save) and deletion.

Same rules as the apps' views: shape checked by forms, the database fetched with the shared
permission-scoped selector, services for every change. Network checks of new sources run before
the transaction that saves."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from console import selectors, services
from console.decorators import admin_required, page_user
from console.errors import ApplicationError
from console.forms import DatabaseEditForm
from console.models import Database, DatabaseStatus
from console.views import database_context
from replication import selectors as replica_selectors
from replication import services as replica_services
from replication import views as replica_views
from replication.forms import ReplicaSourcesForm
from replication.live import STATUS_LABELS
from replication.syncer.preflight import PreflightReport


@require_GET
def database_list(request: HttpRequest) -> HttpResponse:
    readable = selectors.database_list(user=page_user(request)).order_by("name")
    rows = replica_views.database_rows(list(replica_selectors.with_replica_of(readable)))
    context = {"databases": rows, "replica_labels": STATUS_LABELS}
    return render(request, "console/database_list.html", context)


@require_GET
def database_detail(request: HttpRequest, uid: int) -> HttpResponse:
    database = selectors.database_get_for_user(user=page_user(request), uid=uid)
    context = database_context(database, "configuration")
    # Only whether a password is set reaches the template, never the password.
    context["has_password"] = bool(database.password)
    if database.status == DatabaseStatus.ACTIVE:
        context["key_count"] = selectors.database_key_count(database)
    context.update(replica_views.panel_context(database))
    return render(request, "console/database_configuration.html", context)


def _preflight(
    database: Database, replica: ReplicaSourcesForm, shown: list[PreflightReport]
) -> PreflightReport | None:
    """The pre-flight of the new sources: its failures refuse the Save (ApplicationError) unless
    the operator ticked the override; returns the overridden report, if any. The report goes
    into `shown` (the re-rendered page lists its lines)."""
    if not replica.inputs:
        return None
    report = replica_services.replica_preflight(destination=database, sources=replica.inputs)
    shown.append(report)
    if not report.failures:
        return None
    if not replica.cleaned_data.get("preflight_override"):
        raise ApplicationError(replica_services.preflight_refusal(report), field="replica_sources")
    return report


@require_http_methods(["GET", "POST"])
@admin_required
def database_edit(request: HttpRequest, uid: int) -> HttpResponse:
    database = selectors.database_get_for_user(user=page_user(request), uid=uid)
    initial = {
        "memory_mb": max(database.memory_size // (1024 * 1024), 1),
        "tls_mode": database.tls_mode,
        "enforce_client_authentication": database.enforce_client_authentication,
    }
    form = DatabaseEditForm(
        request.POST or None,
        request.FILES or None,
        initial=initial,
        trusted=services.trusted_certificates(database),
    )
    replica = replica_views.replica_form(request, database)
    # Both parts are checked before anything is saved (both, so that a re-rendered page keeps
    # the source list even when only the memory field was wrong); both saves commit together.
    valid = request.method == "POST" and all([form.is_valid(), replica.is_valid()])
    preflight_failed = False
    preflight_shown: list[PreflightReport] = []
    if valid:
        try:
            overridden = None
            if replica.changed:
                replica_services.replica_sources_check(destination=database, sources=replica.inputs)
                overridden = _preflight(database, replica, preflight_shown)
            with transaction.atomic():
                services.database_update(
                    actor=page_user(request), database=database, **form.service_kwargs()
                )
                if replica.changed:
                    replica_services.replica_sources_set(
                        actor=page_user(request), destination=database, sources=replica.inputs
                    )
                    if overridden is not None:
                        replica_services.preflight_override_record(
                            actor=page_user(request), destination=database, report=overridden
                        )
        except ApplicationError as exc:
            preflight_failed = exc.message.startswith("pre-flight failed")
            if (exc.field or "").startswith("replica_sources"):
                replica.add_service_error(exc)
            else:
                form.add_service_error(exc)
            database.refresh_from_db()
        else:
            if replica.changed:
                replica_views.replica_form_saved(request, database)
            messages.success(request, f"Changes to {database.name} saved.")
            # The pre-flight passed; its warnings (with their fixes) are worth reading now.
            for check in (c for r in preflight_shown for c in r.checks if c.level == "warn"):
                fix = f" Fix: {check.fix}" if check.fix else ""
                messages.warning(
                    request, f"Pre-flight warning: {check.subject}: {check.message}.{fix}"
                )
            return redirect("database-detail", uid=database.pk)
    context = database_context(database, "configuration")
    context.update(form=form, has_password=bool(database.password))
    context.update(replica_views.edit_context(page_user(request), database, replica))
    context["replica_preflight_failed"] = preflight_failed
    context["replica_preflight"] = preflight_shown[0].as_dict() if preflight_shown else None
    return render(request, "console/database_edit.html", context)


@require_http_methods(["GET", "POST"])
@admin_required
def database_delete(request: HttpRequest, uid: int) -> HttpResponse:
    database = selectors.database_get_for_user(user=page_user(request), uid=uid)
    error = ""
    if request.method == "POST":
        try:
            replica_services.database_delete(actor=page_user(request), database=database)
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(request, f"Database {database.name} is being deleted.")
            return redirect("database-list")
    context = database_context(database, "configuration")
    context["error"] = error
    context["source_destinations"] = replica_selectors.destinations_of(database)
    return render(request, "console/database_delete.html", context, status=400 if error else 200)
