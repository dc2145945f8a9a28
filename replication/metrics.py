"""`/metrics`: Replica Of in Prometheus' text format, built with prometheus-client.

Redis Enterprise's names, so that its dashboards and alerts work unchanged:
- v1 (per destination database, labels `cluster`, `bdb`):
  `bdb_replicaof_syncer_ingress_bytes` and `…_ingress_bytes_decompressed` (gauges: bytes/s over
  the last few seconds, as Redis Enterprise reports them),
  `bdb_replicaof_syncer_local_ingress_lag_time` (ms, the largest lag of its sources),
  `bdb_replicaof_syncer_status` (0 in sync, 1 syncing, 2 out of sync: the worst of its sources;
  a stopped or paused sync is out of sync).
- v2 (per source, labels `cluster`, `bdb`, `source`, and `syncer_type="replicaof"` where Redis
  Enterprise has it): `replica_src_ingress_bytes`, `replica_src_ingress_bytes_decompressed`
  (totals that never go backwards: control Redis `totals:<source>`, summed over every job),
  `database_syncer_lag_ms`, `database_syncer_current_status`.
  prometheus-client names every counter `…_total`; Redis Enterprise's two totals have no such
  suffix (its dashboards use `rate(replica_src_ingress_bytes[1m])`), so they are exported
  untyped under their exact names, and as typed counters under ours below.
- ours (labels `bdb`, `bdb_name`, `source`, `source_name`): `replicaof_sync_state` (1 for the
  destination's current `replica_sync`), `replicaof_source_up`, `replicaof_source_lag_milliseconds`,
  and the counters `replicaof_source_ingress_bytes_total`,
  `replicaof_source_ingress_bytes_decompressed_total`, `replicaof_source_commands_applied_total`.

A lag that is not known (no sample yet) is left out, never reported as 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)

from console import selectors as console_selectors
from replication import control
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync, SourceStatus

# Redis Enterprise's syncer status values.
RE_STATUS: dict[str, int] = {
    SourceStatus.IN_SYNC: 0,
    SourceStatus.SYNCING: 1,
    SourceStatus.OUT_OF_SYNC: 2,
}
# The v1 rates average the newest RATE_WINDOW_S seconds of samples (one a second); a source
# whose newest sample is older than SAMPLES_STALE_S has no job writing for it: rate 0.
RATE_WINDOW_S = 5
SAMPLES_STALE_S = 60


@dataclass(frozen=True, slots=True)
class _SourceFigures:
    source: ReplicaSource
    status: int | None  # Redis Enterprise's status value; None while the sync is disabled
    lag: int | None
    totals: dict[str, int]
    rates: dict[str, float]


def _rates(uid: int, source_uid: int, now: float) -> dict[str, float]:
    samples = control.stats_read(uid, source_uid)
    newest = max((float(s["t"]) for s in samples), default=0.0)
    if newest < now - SAMPLES_STALE_S:
        samples = []
    samples = [s for s in samples if float(s["t"]) > newest - RATE_WINDOW_S]
    return {
        name: sum(s.get(name, 0) for s in samples) / RATE_WINDOW_S
        for name in ("ingress_bytes", "ingress_bytes_decompressed")
    }


def _status(replica_sync: str, source: ReplicaSource) -> int | None:
    if replica_sync == ReplicaSync.DISABLED:
        return None
    if replica_sync != ReplicaSync.ENABLED:
        return 2  # stopped or paused: not following the source
    return RE_STATUS.get(str(source.status), 1)


class ReplicaOfCollector:
    """Reads the saved rows and the control Redis once per scrape."""

    def __init__(self) -> None:
        cluster = console_selectors.cluster_get()
        self.cluster = cluster.name if cluster else ""

    def _figures(self) -> tuple[list[ReplicaOf], dict[int, list[_SourceFigures]]]:
        now = time.time()
        states = list(ReplicaOf.objects.select_related("destination"))
        sync_of = {r.destination_id: r.replica_sync for r in states}
        by_destination: dict[int, list[_SourceFigures]] = {}
        for s in ReplicaSource.objects.order_by("destination_id", "uid"):
            replica_sync = sync_of.get(s.destination_id, ReplicaSync.DISABLED)
            by_destination.setdefault(s.destination_id, []).append(
                _SourceFigures(
                    source=s,
                    status=_status(replica_sync, s),
                    lag=s.lag,
                    totals=control.totals_read(s.destination_id, s.uid),
                    rates=_rates(s.destination_id, s.uid, now),
                )
            )
        return states, by_destination

    def collect(self) -> Iterator[Metric]:
        states, by_destination = self._figures()
        names = {r.destination_id: r.destination.name for r in states}
        yield from self._re_v1(by_destination)
        yield from self._re_v2(by_destination)
        yield from self._ours(states, by_destination, names)

    def _re_v1(self, by_destination: dict[int, list[_SourceFigures]]) -> Iterator[Metric]:
        labels = ["cluster", "bdb"]
        ingress = GaugeMetricFamily(
            "bdb_replicaof_syncer_ingress_bytes",
            "Rate of compressed incoming network traffic to a Replica Of database (bytes/sec)",
            labels=labels,
        )
        decompressed = GaugeMetricFamily(
            "bdb_replicaof_syncer_ingress_bytes_decompressed",
            "Rate of decompressed incoming network traffic to a Replica Of database (bytes/sec)",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "bdb_replicaof_syncer_local_ingress_lag_time",
            "Lag time between the source and the destination for Replica Of traffic (ms)",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "bdb_replicaof_syncer_status",
            "Syncer status for Replica Of traffic; 0 = in-sync, 1 = syncing, 2 = out of sync",
            labels=labels,
        )
        for uid, figures in by_destination.items():
            values = [self.cluster, str(uid)]
            ingress.add_metric(values, sum(f.rates["ingress_bytes"] for f in figures))
            decompressed.add_metric(
                values, sum(f.rates["ingress_bytes_decompressed"] for f in figures)
            )
            lags = [f.lag for f in figures if f.lag is not None]
            if lags:
                lag.add_metric(values, max(lags))
            statuses = [f.status for f in figures if f.status is not None]
            if statuses:
                status.add_metric(values, max(statuses))
        yield from (ingress, decompressed, lag, status)

    def _re_v2(self, by_destination: dict[int, list[_SourceFigures]]) -> Iterator[Metric]:
        labels = ["cluster", "bdb", "source"]
        typed = [*labels, "syncer_type"]
        ingress = UnknownMetricFamily(
            "replica_src_ingress_bytes",
            "Compressed bytes received from the Replica Of source (total)",
            labels=labels,
        )
        decompressed = UnknownMetricFamily(
            "replica_src_ingress_bytes_decompressed",
            "Decompressed bytes received from the Replica Of source (total)",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "database_syncer_lag_ms",
            "Lag time between the source and the destination (ms)",
            labels=typed,
        )
        status = GaugeMetricFamily(
            "database_syncer_current_status",
            "Syncer status; 0 = in-sync, 1 = syncing, 2 = out of sync",
            labels=typed,
        )
        for uid, figures in by_destination.items():
            for f in figures:
                values = [self.cluster, str(uid), str(f.source.uid)]
                ingress.add_metric(values, f.totals["ingress_bytes"])
                decompressed.add_metric(values, f.totals["ingress_bytes_decompressed"])
                if f.lag is not None:
                    lag.add_metric([*values, "replicaof"], f.lag)
                if f.status is not None:
                    status.add_metric([*values, "replicaof"], f.status)
        yield from (ingress, decompressed, lag, status)

    def _ours(
        self,
        states: list[ReplicaOf],
        by_destination: dict[int, list[_SourceFigures]],
        names: dict[int, str],
    ) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "replicaof_sync_state",
            "Replica Of state of a destination (1 = current state).",
            labels=["bdb", "bdb_name", "state"],
        )
        for r in states:
            for value in ReplicaSync.values:
                state.add_metric(
                    [str(r.destination_id), r.destination.name, value],
                    int(r.replica_sync == value),
                )
        yield state
        labels = ["bdb", "bdb_name", "source", "source_name"]
        up = GaugeMetricFamily(
            "replicaof_source_up", "1 when the source is in sync.", labels=labels
        )
        lag = GaugeMetricFamily(
            "replicaof_source_lag_milliseconds", "Replication lag of the source.", labels=labels
        )
        counters = {
            "ingress_bytes": CounterMetricFamily(
                "replicaof_source_ingress_bytes",
                "Bytes read from the source (compressed, as on the wire).",
                labels=labels,
            ),
            "ingress_bytes_decompressed": CounterMetricFamily(
                "replicaof_source_ingress_bytes_decompressed",
                "Bytes read from the source, decompressed.",
                labels=labels,
            ),
            "commands": CounterMetricFamily(
                "replicaof_source_commands_applied",
                "Source commands applied on the destination.",
                labels=labels,
            ),
        }
        for uid, figures in by_destination.items():
            for f in figures:
                values = [str(uid), names.get(uid, ""), str(f.source.uid), f.source.name]
                up.add_metric(values, int(f.status == 0))
                if f.lag is not None:
                    lag.add_metric(values, f.lag)
                for name, family in counters.items():
                    family.add_metric(values, f.totals[name])
        yield up
        yield lag
        yield from counters.values()


def metrics_text() -> bytes:
    """The text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplicaOfCollector())
    return generate_latest(registry)
