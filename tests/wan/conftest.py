"""Fixtures for tests across two hosts (tests/support/hosts.py): the bed alone, or the bed with a
console running on each host. Both check after teardown that nothing is left and fail loudly
otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import Bed


def stop_and_check(bed: Bed) -> None:
    """Tear the bed down, then fail the test (as a teardown error) if anything survived."""
    try:
        bed.stop()
    finally:
        left = bed.leftovers()
        if left:
            pytest.fail("the WAN bed left behind:\n  " + "\n  ".join(left), pytrace=False)


def new_bed() -> Bed:
    """A test bed whose logs (delay bridge, run.sh, every console process) are kept after it,
    in the test run's var dir (tests/plugin.py): wan-logs/<bed prefix>/."""
    return Bed(keep_logs=Path(os.environ["CONSOLE_VAR_DIR"]) / "wan-logs")


@pytest.fixture
def wan_bed() -> Iterator[Bed]:
    """east and west joined by the WAN link (no delay, no limit: set them with bed.link.set)."""
    bed = new_bed().start()
    try:
        yield bed
    finally:
        stop_and_check(bed)


@pytest.fixture(scope="module")
def wan_consoles() -> Iterator[Bed]:
    """The bed with a whole console (scripts/run.sh) on each host, ready: GET /v1/cluster is 200
    on both. The link is reset (no delay, no limit, not cut) before each test that uses `wan`."""
    bed = new_bed().start()
    try:
        for host in bed.hosts:
            host.start_console(wait=False)
        for host in bed.hosts:
            assert host.console is not None
            host.console.wait_ready()
        yield bed
    finally:
        stop_and_check(bed)


@pytest.fixture
def wan(wan_consoles: Bed) -> Bed:
    wan_consoles.link.restore()
    wan_consoles.link.set(delay_ms=0, rate=None)
    return wan_consoles
