"""Replica Of pages: the live panel of a database, its edit section, the dialogs' endpoints.

Same rules as console.views: shape checked by a form, the database fetched with the shared
permission-scoped selector, one service call, and refusals shown next to the field at fault.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from console import selectors as console_selectors
from console.decorators import admin_required, page_user
from console.errors import ApplicationError
from console.models import Database, DatabaseStatus, User
from console.views import database_context
from replication import cutover, graph, selectors, services
from replication.forms import ExternalSourceForm, ReplicaSourcesForm, pending_row
from replication.live import ADVICE, STATUS_LABELS
from replication.models import CutoverState, CutoverStep, ReplicaSync
from replication.pending import pending_forget, pending_put
from replication.serializers import CutoverSerializer, cutover_connection, cutover_steps
from replication.sources import MAX_SOURCES, SourceInput, source_input_of

# Fields of the Add source dialog that a refusal may name besides the URL.
DIALOG_TLS_FIELDS = ("server_cert", "replication_tls_sni")

# The buttons of the Replica Of panel and what the page says after each.
SYNC_ACTIONS = {
    "stop": "Replica Of stopped: the data stays, read-only for applications; remove the "
    "sources to make it writable.",
    "start": "Replica Of started: the destination is flushed and synced from scratch.",
    "restart": "Replica Of restarted: the destination is flushed and synced from scratch.",
    "pause": "Replica Of paused: it resumes where it was.",
    "resume": "Replica Of resumed.",
    "credentials": "The source's new password is used: syncing again from scratch.",
}


# The columns of a verify result, in the order the page shows them.
VERIFY_KINDS = [
    ("equal", "Equal"),
    ("missing", "Missing"),
    ("extra", "Extra"),
    ("different", "Different"),
    ("ttl_off", "TTL off"),
    ("conflicts", "Conflicts"),
    ("unsettled", "Unsettled"),
]


def replica_badge(live: dict[str, Any]) -> dict[str, Any]:
    """The Replica Of badges of a database: its status as a destination, its destinations."""
    return {
        "destination": live["replica_sync"] != ReplicaSync.DISABLED,
        "status": live["status"],
        "label": STATUS_LABELS.get(live["status"], live["status"]),
        "destinations": live["destinations"],
    }


def database_rows(databases: list[Database]) -> list[tuple[Database, dict[str, Any]]]:
    """Each database with its Replica Of badge, for the database list (`databases` come from
    `selectors.with_replica_of`: no query per row)."""
    return [(db, replica_badge(selectors.database_live_status(db))) for db in databases]


def panel_context(database: Database) -> dict[str, Any]:
    """The Replica Of panel of a database page: live snapshot, chart series, labels, advice."""
    live = selectors.database_live_status(database)
    # Asked of the database's shards at each page load (a reload shows them anew).
    replicas = (
        console_selectors.database_replicas(database)
        if database.status == DatabaseStatus.ACTIVE
        else []
    )
    return {
        "live": live,
        "replica_badge": replica_badge(live),
        "replica_labels": STATUS_LABELS,
        "replica_advice": ADVICE,
        "source_usable": database.status != DatabaseStatus.DELETE_PENDING,
        "source_destinations": selectors.destinations_of(database),
        "connected_replicas": replicas,
        # The connection column only when some replica's connection could be told apart.
        "replicas_matched": any(r.connection for r in replicas or []),
        "replica_events": selectors.replica_events_of(database, limit=20),
        "verify_runs": selectors.verify_runs_of(database),
        "verify_kinds": VERIFY_KINDS,
        "replica_alerts": selectors.alerts_of(database=database, raised_only=True),
    }


@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    """Alerts: what is raised now, then what was cleared, newest first."""
    return render(request, "replication/alert_list.html", {"alerts": selectors.alerts_of()})


def edit_context(user: User, database: Database, form: ReplicaSourcesForm) -> dict[str, Any]:
    """The Replica Of section of Database → Edit: its rows and the 'Current cluster' picker."""
    names = {s.uid: s.name for s in selectors.replica_sources_of(database)}
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
        "replica_max_sources": MAX_SOURCES,
        "external_form": ExternalSourceForm(auto_id="id_external_%s"),
    }


def replica_form(request: HttpRequest, database: Database) -> ReplicaSourcesForm:
    return ReplicaSourcesForm(
        request.POST if request.method == "POST" else None,
        destination=database,
        saved=selectors.replica_sources_of(database),
        session=request.session,
    )


def replica_form_saved(request: HttpRequest, database: Database) -> None:
    """After the edit was saved: the sources kept for it in the session are not needed."""
    pending_forget(request.session, destination_uid=database.pk)


def _field_errors(exc: ApplicationError, field: str) -> JsonResponse:
    return JsonResponse({"errors": {field: [exc.message]}}, status=400)


@never_cache
@require_POST
@admin_required
def source_check(request: HttpRequest, uid: int) -> JsonResponse:
    """The dialog's Add source: check one source (format, cycle, TLS material, connection,
    credentials) with `replica_source_check`, exactly as it would be saved; nothing is saved
    until the whole edit is."""
    destination = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    if request.POST.get("kind") == "internal":
        raw = request.POST.get("database", "")
        readable = console_selectors.database_list(user=page_user(request))
        database = readable.filter(pk=int(raw)).first() if raw.isdigit() else None
        if database is None:
            return JsonResponse({"errors": {"database": ["Choose a database."]}}, status=400)
        try:
            services.replica_source_check(
                destination=destination,
                source=SourceInput(source_database_uid=database.pk),
                field="database",
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
        checked = services.replica_source_check(destination=destination, source=wanted, field="uri")
    except ApplicationError as exc:
        field = next((f for f in DIALOG_TLS_FIELDS if (exc.field or "").endswith(f".{f}")), "uri")
        return _field_errors(exc, field)
    # Kept server-side until the edit is saved: the answer (and so the page) gets a token, not
    # the URL with its password (replication.pending).
    token = pending_put(request.session, destination_uid=destination.pk, source=wanted)
    row = pending_row(token, checked.url.address, wanted)
    row["encryption"] = wanted.encryption or checked.url.tls
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
def verify_action(request: HttpRequest, uid: int) -> HttpResponse:
    """The Verify card's Verify (with an optional rate) and Cancel buttons."""
    destination = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    actor = page_user(request)
    try:
        if request.POST.get("action") == "cancel":
            services.replica_verify_cancel(actor=actor, destination=destination)
            messages.success(request, "Verify cancelled.")
        else:
            raw = request.POST.get("rate", "").strip()
            try:
                rate = float(raw) if raw else None
            except ValueError:
                raise ApplicationError("the rate must be a number of keys per second") from None
            services.replica_verify_start(
                actor=actor, destination=destination, rate=rate, ttl_tolerance_ms=1000
            )
            messages.success(request, "Verify started: it compares every key with the sources.")
    except ApplicationError as exc:
        messages.error(request, f"Not done: {exc.message}.")
    return redirect("database-detail", uid=destination.pk)


@never_cache
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


@never_cache
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


# ---------------------------------------------------------------- pre-flight and migration


def _int_field(request: HttpRequest, name: str, default: int) -> int:
    raw = request.POST.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ApplicationError(f"{name.replace('_', ' ')} must be a whole number", field=name)
    return int(raw)


@require_POST
@admin_required
def preflight_action(request: HttpRequest, uid: int) -> HttpResponse:
    """The database page's Run pre-flight: the lines of its current sources, nothing saved."""
    database = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    context = database_context(database, "configuration")
    try:
        wanted = [source_input_of(s) for s in selectors.replica_sources_of(database)]
        services.replica_sources_check(destination=database, sources=wanted)
        context["preflight"] = services.replica_preflight(
            destination=database, sources=wanted
        ).as_dict()
    except ApplicationError as exc:
        context["preflight_error"] = exc.message
    return render(request, "replication/preflight.html", context)


def cutover_context(database: Database) -> dict[str, Any]:
    """The migration page: the newest migration with its steps, and what a new one may use."""
    row = selectors.cutover_of(database)
    sources = selectors.replica_sources_of(database)
    return {
        "cutover": row,
        "cutover_data": CutoverSerializer(row).data if row else None,
        "cutover_steps": cutover_steps(row) if row else [],
        "cutover_active": row is not None
        and row.state in (CutoverState.RUNNING, CutoverState.WAITING),
        "cutover_connection": cutover_connection(row)
        if row and row.step == CutoverStep.DONE
        else None,
        "current_sources": sources,
        "max_pause_ms": cutover.MAX_PAUSE_MS,
    }


@require_GET
def cutover_page(request: HttpRequest, uid: int) -> HttpResponse:
    database = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    context = database_context(database, "migrate")
    context.update(cutover_context(database))
    refused = graph.cycle_candidates(database)
    context["candidates"] = [
        db
        for db in console_selectors.database_list(user=page_user(request)).order_by("name")
        if db.pk != database.pk and db.status == DatabaseStatus.ACTIVE and db.pk not in refused
    ]
    return render(request, "replication/cutover.html", context)


@require_POST
@admin_required
def cutover_action(request: HttpRequest, uid: int) -> HttpResponse:
    """The migration page's buttons: Start, and each step's move (retry, override, confirm the
    flush, cut over, proceed, cancel)."""
    destination = console_selectors.database_get_for_user(user=page_user(request), uid=uid)
    actor = page_user(request)
    action = request.POST.get("action", "")
    try:
        if action == "start":
            raw = request.POST.get("source", "")
            sources = None
            if raw.isdigit():
                readable = console_selectors.database_list(user=actor)
                if not readable.filter(pk=int(raw)).exists():
                    raise ApplicationError("choose a database", field="source")
                sources = [SourceInput(source_database_uid=int(raw))]
            elif raw != "current":
                raise ApplicationError("choose the sources to migrate from", field="source")
            cutover.cutover_start(
                actor=actor,
                destination=destination,
                sources=sources,
                lag_threshold_ms=_int_field(request, "lag_threshold_ms", 1000),
                pause_ms=_int_field(request, "pause_ms", 3000),
            )
            messages.success(request, "Migration started: pre-flight first.")
        else:
            pause = request.POST.get("pause_ms")
            cutover.cutover_act(
                actor=actor,
                destination=destination,
                action=action,
                pause_ms=_int_field(request, "pause_ms", 0) if pause is not None else None,
            )
    except ApplicationError as exc:
        messages.error(request, f"Not done: {exc.message}.")
    return redirect("replica-migrate", uid=destination.pk)
