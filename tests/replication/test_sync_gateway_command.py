"""`manage.py sync_gateway`'s TLS material follows the cluster's certificates while it runs: a
proxy certificate replaced through the service reaches the gateway's next sessions."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from console import services
from console.models import Certificate
from replication.management.commands.sync_gateway import tls_reloader
from tests.support.pki import make_certificate


def presents(server: ssl.SSLContext, certificate_pem: str) -> bool:
    """Whether a TLS handshake with `server` verifies against `certificate_pem` alone."""
    client = ssl.create_default_context(cadata=certificate_pem)
    client.check_hostname = False
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, into in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
            into.write(out.read())
    return c.version() is not None


@pytest.mark.django_db(transaction=True)  # the reloader closes its connections
def test_a_replaced_proxy_certificate_reaches_the_gateway_without_a_restart(
    bootstrapped: None, admin_user: Any, tmp_path: Path
) -> None:
    old = Certificate.objects.get(kind=Certificate.Kind.PROXY).certificate_pem
    (server, database), reload = tls_reloader(tmp_path / "gateway")
    assert server is not None and database is not None
    assert presents(server, old)
    assert reload() is None  # nothing changed: the contexts stay
    new = make_certificate(common_name="proxy.cluster.local")
    services.certificate_replace(
        actor=admin_user, kind="proxy", certificate_pem=new.certificate, private_key_pem=new.key
    )
    fresh = reload()
    assert fresh is not None and fresh[0] is not None
    assert presents(fresh[0], new.certificate) and not presents(fresh[0], old)
    assert reload() is None
    assert not (tmp_path / "gateway").exists()  # the key files lived only while read
