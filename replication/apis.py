"""REST API of Replica Of: `replica_sources`/`replica_sync` of PUT /v1/bdbs/{uid} (the roof's
bdb resource calls `bdb_replica_change`), the actions, `sync_source_stats` and the Prometheus
`/metrics`. Thin: shape, selector, service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console import selectors as console_selectors
from console.errors import ApplicationError
from console.fields import single_query
from console.models import Database, User
from console.permissions import IsAdmin
from console.schema import STATE_REFUSALS
from replication import cutover, selectors, series, services
from replication.metrics import metrics_text
from replication.models import AlertName
from replication.serializers import (
    AlertSettingsOutSerializer,
    AlertSettingsSerializer,
    BdbReplicaUpdateSerializer,
    CutoverActionSerializer,
    CutoverSerializer,
    CutoverStartSerializer,
    PreflightSerializer,
    ReplicaEventSerializer,
    ReplicaEventsQuerySerializer,
    ReplicaVerifyRequestSerializer,
    SourceUidSerializer,
    SyncSourceStatsSerializer,
    SyncStatsQuerySerializer,
    VerifyRunSerializer,
    alert_settings_data,
    alert_settings_values,
    alert_state_data,
    source_uri_redacted,
)
from replication.sources import SourceInput, source_input_of
from replication.syncer.preflight import PreflightReport


def _wanted_sources(database: Database, items: list[dict[str, Any]]) -> list[SourceInput]:
    """The PUT body's sources as service inputs. A `uri` equal to what GET shows for a current
    source (password as `***`) keeps that source as it is, so GET-modify-PUT works."""
    current = {source_uri_redacted(s): s for s in selectors.replica_sources_of(database)}
    wanted: list[SourceInput] = []
    for item in items:
        kept = current.get(item["uri"]) if item["bdb_uid"] is None else None
        if kept is not None:
            base = source_input_of(kept)
            wanted.append(
                SourceInput(
                    source_database_uid=base.source_database_uid,
                    uri=base.uri,
                    compression=item["compression"],
                    gateway_port=item["gateway_port"],
                    encryption=item["encryption"] or base.encryption,
                    server_cert=item["server_cert"],
                    client_cert=item["client_cert"],
                    replication_tls_sni=item["replication_tls_sni"],
                )
            )
            continue
        wanted.append(
            SourceInput(
                source_database_uid=item["bdb_uid"],
                uri=item["uri"] if item["bdb_uid"] is None else "",
                compression=item["compression"],
                gateway_port=item["gateway_port"],
                encryption=item["encryption"],
                server_cert=item["server_cert"],
                client_cert=item["client_cert"],
                replication_tls_sni=item["replication_tls_sni"],
            )
        )
    return wanted


@dataclass(frozen=True, slots=True)
class ReplicaChange:
    """The Replica Of part of a PUT /v1/bdbs/{uid}, checked (network included) and ready to be
    saved inside the caller's transaction by `apply`."""

    database: Database
    sources: list[SourceInput] | None  # None: the sources stay as they are
    state: str | None  # the wanted `replica_sync`, if any
    overridden: PreflightReport | None = None  # a failed pre-flight the operator overrode

    def apply(self, *, actor: User) -> None:
        if self.sources is not None:
            services.replica_sources_set(
                actor=actor, destination=self.database, sources=self.sources
            )
            if self.overridden is not None:
                services.preflight_override_record(
                    actor=actor, destination=self.database, report=self.overridden
                )
        if self.state is not None:
            services.replica_sync_set(actor=actor, destination=self.database, state=self.state)


def bdb_replica_change(*, database: Database, data: Any) -> ReplicaChange:
    """Read and check `replica_sources`/`replica_sync` of a PUT body: sources first, then the
    `replica_sync` move. Connection checks run here, before any transaction opens."""
    if not isinstance(data, dict) or not ({"replica_sources", "replica_sync"} & data.keys()):
        return ReplicaChange(database, None, None)
    body = BdbReplicaUpdateSerializer(data=data)
    body.is_valid(raise_exception=True)
    sources = None
    overridden = None
    if "replica_sources" in body.validated_data:
        wanted = _wanted_sources(database, body.validated_data["replica_sources"])
        current = [source_input_of(s) for s in selectors.replica_sources_of(database)]
        if wanted != current:
            sources = wanted
            if body.validated_data["check_connection"]:
                services.replica_sources_check(destination=database, sources=wanted)
                if wanted:
                    report = services.replica_preflight(destination=database, sources=wanted)
                    if report.failures and not body.validated_data["preflight_override"]:
                        raise ApplicationError(
                            services.preflight_refusal(report), field="replica_sources"
                        )
                    overridden = report if report.failures else None
    return ReplicaChange(database, sources, body.validated_data.get("replica_sync"), overridden)


class ReplicaPreflightApi(APIView):
    """Pre-flight of the database's sources, or of the `replica_sources` given (the shape of
    PUT /v1/bdbs/{uid}): pass / warn / fail lines with their fixes; nothing is saved."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=BdbReplicaUpdateSerializer,
        responses={200: PreflightSerializer},
        extensions={STATE_REFUSALS: "no sources, or a source is not acceptable"},
    )
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = BdbReplicaUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if "replica_sources" in body.validated_data:
            wanted = _wanted_sources(db, body.validated_data["replica_sources"])
        else:
            wanted = [source_input_of(s) for s in selectors.replica_sources_of(db)]
        services.replica_sources_check(destination=db, sources=wanted)
        report = services.replica_preflight(destination=db, sources=wanted)
        return Response(report.as_dict())


def _database(request: Request, uid: int) -> Database:
    return console_selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]


class ReplicaSourceUrlApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        request=None,
        responses={200: inline_serializer("SourceUrl", {"uri": serializers.CharField()})},
    )
    def post(self, request: Request, uid: int) -> Response:
        url = services.replica_source_url(actor=request.user, database=_database(request, uid))  # type: ignore[arg-type]
        response = Response({"uri": url})
        add_never_cache_headers(response)  # it holds the internal password
        return response


class RegenerateAdminPasswordApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        request=None,
        responses={200: inline_serializer("Result", {"result": serializers.CharField()})},
        extensions={STATE_REFUSALS: "the database is not active, or its processes refuse"},
    )
    def post(self, request: Request, uid: int) -> Response:
        services.admin_password_regenerate(actor=request.user, database=_database(request, uid))  # type: ignore[arg-type]
        return Response({"result": "ok"})


class _ResourceActionApi(APIView):
    """An action on a database that answers with the database as GET shows it. The bdb resource
    is assembled in the roof, which passes its view of it (`resource`) in the URLconf."""

    permission_classes = [IsAdmin]
    resource: Callable[[User, int], dict[str, Any]] | None = None

    def _answer(self, request: Request, uid: int) -> Response:
        assert self.resource is not None, "the URLconf passes resource="
        return Response(self.resource(request.user, uid))  # type: ignore[arg-type]


class ReplicaSyncRestartApi(_ResourceActionApi):
    @extend_schema(exclude=True)  # the roof's subclass is what the URLconf serves
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        services.replica_sync_restart(actor=request.user, destination=db)  # type: ignore[arg-type]
        return self._answer(request, uid)


class ReplicaCredentialsUpdateApi(_ResourceActionApi):
    @extend_schema(exclude=True)  # the roof's subclass is what the URLconf serves
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = SourceUidSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.replica_source_credentials_update(
            actor=request.user,  # type: ignore[arg-type]
            destination=db,
            source_uid=body.validated_data["source_uid"],
        )
        return self._answer(request, uid)


class ReplicaVerifyApi(APIView):
    """Compare the destination with its sources key by key (a task on queue `sync`); poll
    GET /v1/bdbs/{uid}/replica_verify for its progress and result."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=ReplicaVerifyRequestSerializer,
        responses={202: VerifyRunSerializer},
        extensions={STATE_REFUSALS: "the database has no sources, or a verify already runs"},
    )
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = ReplicaVerifyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.replica_verify_start(
            actor=request.user,  # type: ignore[arg-type]
            destination=db,
            rate=body.validated_data["rate"],
            ttl_tolerance_ms=body.validated_data["ttl_tolerance_ms"],
        )
        return Response(VerifyRunSerializer(run).data, status=202)


class ReplicaVerifyCancelApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        request=None,
        responses={200: VerifyRunSerializer},
        extensions={STATE_REFUSALS: "no verify of the database runs"},
    )
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        run = services.replica_verify_cancel(actor=request.user, destination=db)  # type: ignore[arg-type]
        return Response(VerifyRunSerializer(run).data)


class ReplicaVerifyRunsApi(APIView):
    """The destination's last verify runs, newest first."""

    @extend_schema(responses=VerifyRunSerializer(many=True))
    def get(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        return Response(VerifyRunSerializer(selectors.verify_runs_of(db), many=True).data)


class ReplicaMigrateApi(APIView):
    """Begin a guided migration into the database ("Migrate with Replica Of"): pre-flight, then
    (after `confirm_flush`) full sync, Synchronization complete, (after `cutover`) pause and
    drain, verify, stop; poll GET /v1/bdbs/{uid}/replica_migrate."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=CutoverStartSerializer,
        responses={202: CutoverSerializer},
        extensions={
            STATE_REFUSALS: "no sources, a source is not acceptable, or a migration is in progress"
        },
    )
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = CutoverStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = body.validated_data.get("replica_sources") or []
        row = cutover.cutover_start(
            actor=request.user,  # type: ignore[arg-type]
            destination=db,
            sources=_wanted_sources(db, items) if items else None,
            lag_threshold_ms=body.validated_data["lag_threshold_ms"],
            pause_ms=body.validated_data["pause_ms"],
        )
        return Response(CutoverSerializer(selectors.cutover_of(db) or row).data, status=202)


class ReplicaMigrateStepApi(APIView):
    """The operator's move of the migration in progress: `retry`, `override` (a failed
    pre-flight, audited), `confirm_flush`, `cutover`, `proceed` (verify differences, audited),
    `cancel`."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=CutoverActionSerializer,
        responses={200: CutoverSerializer},
        extensions={
            STATE_REFUSALS: "no migration in progress, or the action does not fit its step"
        },
    )
    def post(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = CutoverActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cutover.cutover_act(
            actor=request.user,  # type: ignore[arg-type]
            destination=db,
            action=body.validated_data["action"],
            pause_ms=body.validated_data["pause_ms"],
        )
        return Response(CutoverSerializer(selectors.cutover_of(db)).data)


class ReplicaMigrateStatusApi(APIView):
    """The database's newest migration; 404 when it never had one."""

    @extend_schema(
        responses={
            200: CutoverSerializer,
            404: OpenApiResponse(description="No such database, or it never had a migration."),
        }
    )
    def get(self, request: Request, uid: int) -> Response:
        row = selectors.cutover_of(_database(request, uid))
        if row is None:
            raise NotFound("the database never had a migration")
        return Response(CutoverSerializer(row).data)


class FlushApi(_ResourceActionApi):
    @extend_schema(exclude=True)  # the roof's subclass is what the URLconf serves
    def put(self, request: Request, uid: int) -> Response:
        services.database_flush(actor=request.user, database=_database(request, uid))  # type: ignore[arg-type]
        return self._answer(request, uid)


class ResetAdminPassApi(_ResourceActionApi):
    @extend_schema(exclude=True)  # the roof's subclass is what the URLconf serves
    def put(self, request: Request, uid: int) -> Response:
        services.admin_password_regenerate(actor=request.user, database=_database(request, uid))  # type: ignore[arg-type]
        return self._answer(request, uid)


class SyncerStateApi(APIView):
    """`GET /v1/bdbs/{uid}/syncer_state/replica`: the state of the destination's syncer; 404 when
    the database never was a destination (Redis Enterprise: "syncer state key does not exist")."""

    @extend_schema(
        responses={
            200: OpenApiResponse(description="The syncer's state: job, wanted state, sources."),
            404: OpenApiResponse(description="No such database, or it never was a replica."),
        }
    )
    def get(self, request: Request, uid: int) -> Response:
        state = selectors.syncer_state(_database(request, uid))
        if state is None:
            raise NotFound("syncer state key does not exist: the database is not a replica")
        return Response(state)


def _alert_states(database: Database, source_uid: int | None = None) -> dict[str, Any]:
    """{source uid: {alert name: Redis Enterprise's alert object}} of one destination."""
    settings_row = selectors.alert_settings_of(database)
    saved = {(a.source_uid, a.name): a for a in selectors.alerts_of(database=database)}
    uids = sorted({s.uid for s in selectors.replica_sources_of(database)} | {u for u, _ in saved})
    return {
        str(uid): {
            name: alert_state_data(name, saved.get((uid, name)), settings_row)
            for name in AlertName.values
        }
        for uid in uids
        if source_uid is None or uid == source_uid
    }


class ReplicaAlertsApi(APIView):
    """Redis Enterprise's `GET /v1/bdbs/replica_sources/alerts[/{uid}[/{source}[/{alert}]]]`:
    all destinations `{bdb: {source: {alert: state}}}`, one `{source: {alert: state}}`, one
    source `{alert: state}`, or one alert object."""

    @extend_schema(
        responses={
            200: OpenApiResponse(description="Alert states (Redis Enterprise's alert object)."),
            404: OpenApiResponse(description="No such database, source or alert."),
        }
    )
    def get(
        self,
        request: Request,
        uid: int | None = None,
        source_uid: int | None = None,
        alert: str = "",
    ) -> Response:
        if uid is None:
            databases = console_selectors.database_list(user=request.user)  # type: ignore[arg-type]
            return Response(
                {str(db.pk): states for db in databases if (states := _alert_states(db))}
            )
        states = _alert_states(_database(request, uid), source_uid)
        if source_uid is None:
            return Response(states)
        if str(source_uid) not in states:
            raise NotFound(f"no source {source_uid}")
        one = states[str(source_uid)]
        if not alert:
            return Response(one)
        if alert not in one:
            raise NotFound(f"no alert {alert!r}")
        return Response(one[alert])


def alerts_api(scope: str) -> type[ReplicaAlertsApi]:
    """`ReplicaAlertsApi` for one of its four URLs, with an operation of its own in the schema
    (four URLs of one view would share an operationId)."""
    view = extend_schema_view(
        get=extend_schema(operation_id=f"v1_bdbs_replica_sources_alerts_{scope}")
    )(type(f"ReplicaAlerts{scope.title()}Api", (ReplicaAlertsApi,), {}))
    return view


class ReplicaAlertSettingsApi(APIView):
    """`GET/PUT /v1/bdbs/{uid}/replica_alert_settings` (ours; Redis Enterprise's setting names)."""

    @extend_schema(responses=AlertSettingsOutSerializer)
    def get(self, request: Request, uid: int) -> Response:
        return Response(alert_settings_data(selectors.alert_settings_of(_database(request, uid))))

    @extend_schema(
        request=AlertSettingsSerializer,
        responses=AlertSettingsOutSerializer,
        extensions={STATE_REFUSALS: "the webhook URL is not http(s), an e-mail address is not one"},
    )
    def put(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        body = AlertSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = services.alert_settings_set(
            actor=request.user,  # type: ignore[arg-type]
            destination=db,
            values=alert_settings_values(body.validated_data),
        )
        return Response(alert_settings_data(row))


class ReplicaEventsApi(APIView):
    """What the destination's sync did and why, newest first: full syncs, partial resyncs,
    reconnects, flushes, stops, with their reasons."""

    @extend_schema(
        parameters=[ReplicaEventsQuerySerializer], responses=ReplicaEventSerializer(many=True)
    )
    def get(self, request: Request, uid: int) -> Response:
        db = _database(request, uid)
        query = ReplicaEventsQuerySerializer(data=single_query(request.query_params))
        query.is_valid(raise_exception=True)
        events = selectors.replica_events_of(db, limit=query.validated_data["limit"])
        return Response(ReplicaEventSerializer(events, many=True).data)


_SYNC_SOURCE_STATS_SCHEMA: dict[str, Any] = {
    "parameters": [SyncStatsQuerySerializer],
    "responses": {
        200: SyncSourceStatsSerializer,
        404: OpenApiResponse(description="No such database, or no such source."),
    },
}


class SyncSourceStatsApi(APIView):
    @extend_schema(**_SYNC_SOURCE_STATS_SCHEMA)
    def get(self, request: Request, uid: int, source_uid: int | None = None) -> Response:
        db = _database(request, uid)
        # A plain dict, not the QueryDict: DRF reads `?stime=` from a QueryDict as "not given".
        query = SyncStatsQuerySerializer(data=single_query(request.query_params))
        query.is_valid(raise_exception=True)
        sources = selectors.replica_sources_of(db)
        if source_uid is not None:
            sources = [s for s in sources if s.uid == source_uid]
            if not sources:
                raise NotFound(f"no source {source_uid}")
        return Response(
            {
                "sync_source_stats": [
                    {
                        "uid": s.uid,
                        "intervals": series.source_intervals(db.pk, s.uid, **query.validated_data),
                    }
                    for s in sources
                ]
            }
        )


class SyncSourceStatsOneApi(SyncSourceStatsApi):
    """`sync_source_stats/{source_uid}`: one source's series, an operation of its own in the
    schema (two URLs of one view would share an operationId)."""

    @extend_schema(operation_id="v1_bdbs_sync_source_stats_source", **_SYNC_SOURCE_STATS_SCHEMA)
    def get(self, request: Request, uid: int, source_uid: int | None = None) -> Response:
        return super().get(request, uid, source_uid)


class MetricsApi(APIView):
    """Prometheus text format (replication.metrics): Redis Enterprise's Replica Of metrics and
    ours."""

    permission_classes = [IsAuthenticated]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
