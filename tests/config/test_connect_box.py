"""The Connect box of a database page: the `redis-cli` line an operator copies, with the TLS
flags whenever the port it names speaks TLS (rows only: no worker runs)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from console.models import Database
from tests.support.pages import activate, create_data


def connect_lines(page: str) -> list[str]:
    return re.findall(r"<pre class=\"command\"><code>(redis-cli[^<]*)</code></pre>", page)


@pytest.mark.parametrize(
    ("tls", "client_auth"), [("disabled", False), ("enabled", False), ("enabled", True)]
)
def test_the_connect_box_names_the_tls_flags_of_its_port(
    admin_client: Client, tls: str, client_auth: bool
) -> None:
    data = create_data(tls_mode=tls)
    if client_auth:
        data["enforce_client_authentication"] = "on"
    response = admin_client.post(reverse("database-create"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    db = activate(Database.objects.get(name="cache-1"))
    page = admin_client.get(reverse("database-detail", kwargs={"uid": db.pk})).content.decode()
    lines = connect_lines(page)
    plain = f"redis-cli -h 127.0.0.1 -p {db.port}"
    if tls == "disabled":
        assert all("--tls" not in line for line in lines), lines
        assert any(line.startswith(plain) for line in lines), lines
        return
    # All connections: the database's own port speaks TLS only; no plain line is offered.
    expected = f"{plain} --tls --cacert proxy-certificate.pem"
    if client_auth:
        expected += " --cert client.crt --key client.key"
    assert [line.split(" --user")[0] for line in lines] == [expected], lines
