"""The REST API against its own OpenAPI schema: Schemathesis (its CLI, every check, every phase:
examples, coverage, fuzzing, and stateful sequences along the schema's links) against a live
console (daphne on the test database, tests/support/browser.LiveServer).

Operations that the schema marks with `x-refused-by-state` (console.schema.STATE_REFUSALS) may
answer a schema-valid request with 400, because the answer depends on the cluster's state (a
name taken, not enough free memory...): for them, and only them, positive data may get a 400.
A DELETE marked `x-deleted-asynchronously` leaves its object readable (delete-pending) until a
worker removes it: reads below its path are not expected to 404 at once.
Everything else must hold: no server error, every answer documented and matching its schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from django.conf import settings

from console import services
from console.models import User
from console.schema import DELETED_LATER, STATE_REFUSALS
from replication.services import replica_sources_set
from replication.sources import SourceInput
from tests.support.browser import LiveServer
from tests.support.pages import MB, activate
from tests.support.personas import ADMIN_PASSWORD, basic_auth
from tests.support.workers import REPO, kill_database_processes

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Bounded: the whole run (about 5000 requests) takes two minutes or so on two cores.
MAX_EXAMPLES = 250
POSITIVE_STATUSES = ["2xx", "401", "403", "404", "409", "429"]


def _schema(server: LiveServer) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the live server of this test
        f"{server.url}/v1/schema?format=json",
        headers={"Authorization": basic_auth("admin", ADMIN_PASSWORD)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        schema: dict[str, Any] = json.loads(response.read())
    return schema


def _config(schema: dict[str, Any], path: Path) -> Path:
    """schemathesis.toml: 400 allowed for positive data where the schema says why; what a
    DELETE removes later is not expected to be gone at once."""
    lines = [
        # Every run on its own: no replay of an earlier run's requests, no files in the tree.
        "[cache]",
        "enabled = false",
        "",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {json.dumps(POSITIVE_STATUSES)}",
    ]
    for api_path, item in schema["paths"].items():
        if DELETED_LATER in item.get("delete", {}):
            lines += [
                "",
                "[[operations]]",
                f"include-path-regex = '^{re.escape(api_path)}'",  # a TOML literal string
                "checks.use_after_free.enabled = false",
            ]
        for operation in item.values():
            if STATE_REFUSALS in operation:
                lines += [
                    "",
                    "[[operations]]",
                    f'include-operation-id = "{operation["operationId"]}"',
                    "checks.positive_data_acceptance.expected-statuses = "
                    + json.dumps([*POSITIVE_STATUSES, "400"]),
                ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cluster(admin: User) -> None:
    """Something to read and change: two databases, one a replica of the other."""
    a = activate(services.database_create(actor=admin, name="st-a", memory_size=16 * MB))
    b = activate(services.database_create(actor=admin, name="st-b", memory_size=16 * MB))
    replica_sources_set(actor=admin, destination=b, sources=[SourceInput(source_database_uid=a.pk)])


@pytest.fixture
def api_server(live_server_env: dict[str, str], transactional_db: None, admin_user: User) -> Any:
    env = {**live_server_env, "DJANGO_SETTINGS_MODULE": "tests.api.server_settings"}
    server = LiveServer(env, Path(settings.VAR_DIR) / "test-daphne-schemathesis.log").start()
    try:
        yield server
    finally:
        server.stop()
        kill_database_processes()  # whatever the run created and a worker of the suite started


def test_the_api_keeps_its_schema(api_server: LiveServer, admin_user: User, tmp_path: Path) -> None:
    _cluster(admin_user)
    schema = _schema(api_server)
    operations = sum(len(item) for item in schema["paths"].values())
    assert operations >= 15
    config = _config(schema, tmp_path / "schemathesis.toml")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "SCHEMATHESIS_ADMIN_UID": str(admin_user.pk),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{api_server.url}/v1/schema?format=json",
        "--url",
        api_server.url,
        "--auth",
        f"admin:{ADMIN_PASSWORD}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--seed",
        "12",
        "--continue-on-failure",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    (Path(settings.VAR_DIR) / "schemathesis.out").write_text(output)
    print(output[-6000:])
    assert run.returncode == 0, output[-12000:]
    junit = next(tmp_path.glob("junit-*.xml"))
    report = ElementTree.parse(junit).getroot()  # noqa: S314 - the report this run wrote
    assert (report.get("failures"), report.get("errors")) == ("0", "0"), output[-12000:]
    tested = {case.get("name") for case in report.iter("testcase")}
    documented = {
        f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item
    }
    assert documented <= tested  # every operation was exercised
