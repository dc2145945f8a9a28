"""TLS sources: client certificate, trusted server certificate, SNI; an untrusted one is fatal."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.errors import FatalSyncError
from replication.syncer.resp import TlsOptions
from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.servers import RedisServer, free_port

from .conftest import EngineThread, source_offset

pytestmark = pytest.mark.integration


def _cert(
    name: str, issuer_key: ec.EllipticCurvePrivateKey | None, issuer: x509.Name | None, *, ca: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
    k, c = path.with_suffix(".key"), path.with_suffix(".crt")
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(k), str(c)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca_key, ca = _cert("test-ca", None, None, ca=True)
    _, ca_crt = _write(tmp_path / "ca", ca_key, ca)
    s_key, s_crt = _write(
        tmp_path / "server", *_cert("db.example.test", ca_key, ca.subject, ca=False)
    )
    c_key, c_crt = _write(tmp_path / "syncer", *_cert("syncer", ca_key, ca.subject, ca=False))
    o_key, other = _cert("other-ca", None, None, ca=True)
    _, other_crt = _write(tmp_path / "other", o_key, other)
    return {
        "ca": ca_crt,
        "server_key": s_key,
        "server_crt": s_crt,
        "key": c_key,
        "crt": c_crt,
        "other": other_crt,
    }


def tls_server(servers: Callable[..., RedisServer], pki: dict[str, str]) -> tuple[RedisServer, int]:
    port = free_port()
    args = ["--tls-port", str(port), "--tls-cert-file", pki["server_crt"]]
    args += ["--tls-key-file", pki["server_key"], "--tls-ca-cert-file", pki["ca"]]
    args += ["--tls-auth-clients", "yes"]
    return servers(args=args), port


def test_tls_source_with_client_certificate_and_sni(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread], pki: dict[str, str]
) -> None:
    (src, tls_port), dst = tls_server(servers, pki), servers()
    populate(src.client(), 500)
    tls = TlsOptions(cert=pki["crt"], key=pki["key"], ca=pki["ca"], verify_hostname=True)
    url = f"rediss://127.0.0.1:{tls_port}?sni=db.example.test"
    et = engines([SourceConfig(url, tls)], DestinationConfig(dst.url))
    et.wait_phase("in-sync")
    src.client().incr("counter")
    et.wait_offset(source_offset(src))
    assert_same_data([src.client()], [dst.client()])


def test_untrusted_server_certificate_is_fatal(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread], pki: dict[str, str]
) -> None:
    (_src, tls_port), dst = tls_server(servers, pki), servers()
    tls = TlsOptions(cert=pki["crt"], key=pki["key"], ca=pki["other"])
    et = engines([SourceConfig(f"rediss://127.0.0.1:{tls_port}", tls)], DestinationConfig(dst.url))
    err = et.wait_done()
    assert str(err) == (
        f"TLS: the certificate of 127.0.0.1:{tls_port} does not match the certificate "
        "configured for this source"
    )
    assert isinstance(err, FatalSyncError)
    assert (err.kind, err.side, err.source) == ("tls", "source", 0)
    assert err.endpoint == f"127.0.0.1:{tls_port}"
    assert et.status().last_error_kind == "tls"


@pytest.mark.parametrize("present", ["an untrusted certificate", "no certificate"])
def test_a_source_that_refuses_our_client_certificate_stops_the_sync_with_the_fix(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    pki: dict[str, str],
    tmp_path: Path,
    present: str,
) -> None:
    """With TLS 1.3 the server's refusal arrives after the handshake, on the first read: it is
    still told apart from a lost connection (which would be retried forever)."""
    (_src, tls_port), dst = tls_server(servers, pki), servers()
    o_key, other = _cert("stranger", None, None, ca=True)
    stranger_key, stranger_crt = _write(tmp_path / "stranger", o_key, other)
    tls = TlsOptions(ca=pki["ca"])
    if present == "an untrusted certificate":
        tls = TlsOptions(cert=stranger_crt, key=stranger_key, ca=pki["ca"])
    et = engines([SourceConfig(f"rediss://127.0.0.1:{tls_port}", tls)], DestinationConfig(dst.url))
    err = et.wait_done()
    assert str(err) == (
        f"TLS: 127.0.0.1:{tls_port} refused this cluster's syncer certificate — add it to the "
        "source database's trusted certificates"
    )
    assert isinstance(err, FatalSyncError)
    assert (err.kind, err.side, err.source) == ("tls_client", "source", 0)
    assert et.status().last_error_kind == "tls_client"


def test_tls_below_1_2_is_never_spoken(pki: dict[str, str]) -> None:
    """The syncer's context never negotiates an older TLS than 1.2 (the WAN test checks what a
    real endpoint speaks with openssl s_client)."""
    import ssl

    from replication.syncer.resp import ssl_context

    ctx = ssl_context(TlsOptions(ca=pki["ca"]))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
