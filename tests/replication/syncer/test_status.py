"""Statuses: one per link, aggregated per source (worst phase, progress, sums, last error)."""

from __future__ import annotations

import json

import pytest

from replication.syncer.errors import ErrorKind
from replication.syncer.status import LinkStatus, Phase, SourceStatus, worst_phase

WORST_FIRST = [Phase.STOPPED, Phase.OUT_OF_SYNC, Phase.CONNECTING, Phase.SYNCING, Phase.IN_SYNC]


def test_worst_phase_order() -> None:
    for i, worse in enumerate(WORST_FIRST):
        for better in WORST_FIRST[i:]:
            assert worst_phase([better, worse, better]) is worse
    assert worst_phase([]) is Phase.CONNECTING


def test_source_phase_is_its_worst_link_unless_stopped() -> None:
    st = SourceStatus("redis://a:1", [LinkStatus("a:1", Phase.IN_SYNC), LinkStatus("a:2")])
    phases = [st.phase]
    st.links[1].phase = Phase.IN_SYNC
    phases.append(st.phase)
    st.stopped_error = "a:1: authentication failed"
    phases.append(st.phase)
    assert phases == [Phase.CONNECTING, Phase.IN_SYNC, Phase.STOPPED]
    assert SourceStatus("redis://b:1").phase is Phase.CONNECTING


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (LinkStatus("a", Phase.IN_SYNC), 100.0),
        (LinkStatus("a", Phase.SYNCING, rdb_size=200, rdb_transferred=50), 25.0),
        (LinkStatus("a", Phase.SYNCING, rdb_size=100, rdb_transferred=150), 100.0),
        (LinkStatus("a", Phase.SYNCING, keys_loaded=30, keys_expected=60), 50.0),
        # Counted keys never say 100 before the load has ended (expiry, writes meanwhile).
        (LinkStatus("a", Phase.SYNCING, keys_loaded=70, keys_expected=60), 99.9),
        (LinkStatus("a", Phase.SYNCING), None),
        (LinkStatus("a", Phase.CONNECTING, keys_expected=0), None),
    ],
)
def test_link_progress(link: LinkStatus, expected: float | None) -> None:
    assert link.progress == (pytest.approx(expected) if expected is not None else None)


def test_source_progress_is_the_mean_and_unknown_when_one_is() -> None:
    a = LinkStatus("a", Phase.IN_SYNC)
    b = LinkStatus("b", Phase.SYNCING, rdb_size=100, rdb_transferred=50)
    assert SourceStatus("s", [a, b]).progress == pytest.approx(75.0)
    c = LinkStatus("c", Phase.SYNCING)
    assert SourceStatus("s", [a, b, c]).progress is None
    assert SourceStatus("s").progress is None


def test_sums_maxima_and_unknown_rdb_size() -> None:
    a = LinkStatus("a", rdb_size=10, rdb_transferred=4, keys_loaded=3, commands_applied=5)
    b = LinkStatus("b", rdb_size=20, rdb_transferred=6, keys_loaded=4, commands_applied=7)
    a.lag_ms, a.last_update = 12.0, 100.0
    b.lag_ms, b.last_update = 30.0, 90.0
    st = SourceStatus("s", [a, b])
    d = st.as_dict()
    assert (d["rdb_size"], d["rdb_transferred"], d["keys_loaded"]) == (30, 10, 7)
    assert (d["commands_applied"], d["lag"], d["last_update"]) == (12, 30.0, 100.0)
    b.rdb_size = None  # a diskless transfer has no size
    assert st.rdb_size is None
    assert SourceStatus("s", [LinkStatus("a")]).lag_ms is None


def test_last_error_and_its_kind_go_together() -> None:
    a = LinkStatus("a", last_error="a: connection closed by peer", last_error_kind=ErrorKind.CLOSED)
    b = LinkStatus("b")
    st = SourceStatus("s", [a, b])
    assert (st.last_error, st.last_error_kind) == ("a: connection closed by peer", "closed")
    b.last_error, b.last_error_kind = "b: cannot connect: refused", ErrorKind.REFUSED
    assert (st.last_error, st.last_error_kind) == ("b: cannot connect: refused", "refused")
    # A kind left behind without its message says nothing.
    b.last_error = None
    assert st.last_error_kind == "closed"
    st.stopped_error, st.stopped_error_kind = "b: out of memory", ErrorKind.OOM
    assert (st.last_error, st.last_error_kind) == ("b: out of memory", "oom")
    assert SourceStatus("s", [LinkStatus("a")]).last_error_kind is None


def test_as_dict_is_json_with_plain_strings() -> None:
    ln = LinkStatus("a:1", Phase.OUT_OF_SYNC, last_error="x", last_error_kind=ErrorKind.TIMEOUT)
    d = SourceStatus("redis://a:1", [ln]).as_dict()
    assert d["status"] == "out-of-sync" and type(d["status"]) is str
    assert d["last_error_kind"] == "timeout" and type(d["last_error_kind"]) is str
    (link,) = d["links"]
    assert link["phase"] == "out-of-sync" and type(link["phase"]) is str
    assert link["last_error_kind"] == "timeout" and type(link["last_error_kind"]) is str
    assert link["address"] == "a:1" and link["progress"] is None
    assert json.loads(json.dumps(d)) == d
    assert SourceStatus("s", [LinkStatus("b")]).as_dict()["last_error_kind"] is None
