"""Replica Of pages: the live panel of a database, its edit section, the dialogs' endpoints.

Same rules as console.views: shape checked by a form, the database fetched with the shared
permission-scoped selector, one service call, and refusals shown next to the field at fault.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from console import selectors as console_selectors
from console.decorators import admin_required, page_user
from console.errors import ApplicationError
from console.models import Database, DatabaseStatus, User
from replication import selectors, services, stats
from replication import sources as graph
from replication.forms import ExternalSourceForm, ReplicaSourcesForm
from replication.models import ReplicaSync
from replication.syncer.urls import parse_redis_url

CHART_SECONDS = 15 * 60

# What the operator reads for each state (DESIGN §3); the page's script gets the same table.
STATUS_LABELS = {
    "disabled": "Not a replica",
    "syncing": "Syncing",
    "in-sync": "Synced",
    "out-of-sync": "Reconnecting",
    "stopped": "Sync stopped",
    "paused": "Paused",
}

# The buttons of the Replica Of panel and what the page says after each.
SYNC_ACTIONS = {
    "stop": "Replica Of stopped: the data stays, the sync no longer runs.",
    "start": "Replica Of started: the destination is flushed and synced from scratch.",
    "restart": "Replica Of restarted: the destination is flushed and synced from scratch.",
    "pause": "Replica Of paused: it resumes where it was.",
    "resume": "Replica Of resumed.",
    "credentials": "The source's new password is used: syncing again from scratch.",
}


def replica_badge(live: dict[str, Any]) -> dict[str, Any]:
    """The Replica Of badge of the database list: destination status and/or source count."""
    return {
        "destination": live["replica_sync"] != ReplicaSync.DISABLED,
        "status": live["status"],
        "label": STATUS_LABELS.get(live["status"], live["status"]),
        "destinations": live["destinations"],
    }


def database_rows(databases: list[Database]) -> list[tuple[Database, dict[str, Any]]]:
    """Each database with its Replica Of badge, for the database list."""
    return [(db, replica_badge(selectors.database_live_status(db))) for db in databases]


def panel_context(database: Database) -> dict[str, Any]:
    """The Replica Of panel of a database page: live snapshot, chart series, labels."""
    live = selectors.database_live_status(database)
    series = {
        str(s["uid"]): stats.source_series(database.pk, s["uid"], CHART_SECONDS)
        for s in live["sources"]
    }
    return {
        "live": live,
        "replica_badge": replica_badge(live),
        "replica_series": series,
        "replica_labels": STATUS_LABELS,
        "chart_seconds": CHART_SECONDS,
        "source_usable": database.status != DatabaseStatus.DELETE_PENDING,
    }


def edit_context(user: User, database: Database, form: ReplicaSourcesForm) -> dict[str, Any]:
    """The Replica Of section of Database → Edit: its rows and the 'Current cluster' picker."""
    live = selectors.database_live_status(database)
    names = {s["uid"]: s["name"] for s in live["sources"]}
    rows = form.rows if form.is_bound else form.initial_rows(names)
    refused = graph.cycle_candidates(database)
    candidates = [
        {
            "uid": db.pk,
            "name": db.name,
            "endpoint": f"{db.host}:{db.port}",
            "reason": refused.get(db.pk)
            or ("being deleted" if db.status == DatabaseStatus.DELETE_PENDING else ""),
        }
        for db in console_selectors.database_list(user=user).order_by("name")
    ]
    return {
        "replica_form": form,
        "replica_rows": rows,
        "replica_candidates": candidates,
        "replica_saved_keys": [r["keep"] for r in form.initial_rows(names)],
        "external_form": ExternalSourceForm(auto_id="id_external_%s"),
    }


def replica_form(request: HttpRequest, database: Database) -> ReplicaSourcesForm:
    return ReplicaSourcesForm(
        request.POST if request.method == "POST" else None,
        destination=database,
        saved=selectors.replica_sources_of(database),
    )


def _field_errors(exc: ApplicationError, field: str) -> JsonResponse:
    return JsonResponse({"errors": {field: [exc.message]}}, status=400)


@require_POST
@admin_required
def source_check(request: HttpRequest, uid: int) -> JsonResponse:
    """The dialog's Add source: check one source (format, cycle, connection, credentials) before
    it joins the list; nothing is saved until the whole edit is."""
    destination = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    if request.POST.get("kind") == "internal":
        raw = request.POST.get("database", "")
        readable = console_selectors.database_list(user=page_user(request))
        database = readable.filter(pk=int(raw)).first() if raw.isdigit() else None
        if database is None:
            return JsonResponse({"errors": {"database": ["Choose a database."]}}, status=400)
        reason = graph.cycle_reason(destination, {database.pk})
        if database.status == DatabaseStatus.DELETE_PENDING:
            reason = f"database {database.name} is being deleted"
        if reason:
            return JsonResponse({"errors": {"database": [reason]}}, status=400)
        try:
            services.source_check(
                parse_redis_url(graph.internal_source_url(database)), field="database"
            )
        except ApplicationError as exc:
            return _field_errors(exc, "database")
        row = {"database": database.pk, "name": database.name, "kind": "internal"}
        return JsonResponse({"source": row})
    form = ExternalSourceForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data(escape_html=False)}, status=400)
    wanted = form.source_input()
    try:
        url = graph.parse_external_uri(wanted.uri, field="uri")
        target = graph.database_at(url)
        reason = graph.cycle_reason(destination, {target.pk}) if target else None
        if reason:
            raise ApplicationError(reason, field="uri")
        services.source_check(url, field="uri")
    except ApplicationError as exc:
        return _field_errors(exc, "uri")
    row = {
        "name": url.redacted(),
        "kind": "external",
        "uri": wanted.uri,
        "encryption": wanted.encryption or url.tls,
        "server_cert": wanted.server_cert,
        "replication_tls_sni": wanted.replication_tls_sni,
        "compression": wanted.compression,
    }
    return JsonResponse({"source": row})


@require_POST
@admin_required
def sync_action(request: HttpRequest, uid: int) -> HttpResponse:
    """Stop, Start, Restart, Pause, Resume, or sync again with a source's new password."""
    destination = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    action = request.POST.get("action", "")
    actor = page_user(request)
    try:
        if action == "restart":
            services.replica_sync_restart(actor=actor, destination=destination)
        elif action == "credentials":
            source_uid = request.POST.get("source", "")
            services.replica_source_credentials_update(
                actor=actor,
                destination=destination,
                source_uid=int(source_uid) if source_uid.isdigit() else 0,
            )
        elif action in {"stop", "start", "pause", "resume"}:
            state = {"stop": "stopped", "pause": "paused"}.get(action, "enabled")
            services.replica_sync_set(actor=actor, destination=destination, state=state)
        else:
            raise ApplicationError(f"unknown action {action!r}")
    except ApplicationError as exc:
        messages.error(request, f"Not done: {exc.message}.")
    else:
        messages.success(request, SYNC_ACTIONS[action])
    return redirect("database-detail", uid=destination.pk)


@require_POST
@admin_required
def source_url(request: HttpRequest, uid: int) -> JsonResponse:
    """Reveal the database's Replica Of source URL (with its internal password; audited)."""
    database = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    try:
        url = services.replica_source_url(actor=page_user(request), database=database)
    except ApplicationError as exc:
        return _field_errors(exc, "url")
    return JsonResponse({"url": url})


@require_POST
@admin_required
def password_regenerate(request: HttpRequest, uid: int) -> JsonResponse:
    """A new internal password: destinations that use the old one stop until updated."""
    database = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    try:
        services.admin_password_regenerate(actor=page_user(request), database=database)
    except ApplicationError as exc:
        return _field_errors(exc, "password")
    return JsonResponse({"regenerated": True})
