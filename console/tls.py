"""TLS material of the cluster: which certificates a connection presents and trusts, and how they
reach the disk (console.files.write_private: the ssl module and redis-server read files).

Three uses, one place:
- a database's own endpoint (`database_tls_spec`): serves the proxy certificate, trusts the
  syncer certificate and the client certificates the operator added;
- a connection to a Replica Of source (`source_client_material`): presents this cluster's syncer
  certificate, trusts the server certificate given for the source, or this cluster's proxy
  certificate when the source is one of its own databases;
- a connection to one of this cluster's databases as the syncer (`own_database_client_material`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from console.files import write_private
from console.models import Certificate, Database, TlsMode
from console.provisioning import TlsSpec
from replication.syncer.resp import TlsOptions

__all__ = [
    "TlsMaterial",
    "database_tls_spec",
    "own_database_client_material",
    "source_client_material",
]


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """What a client connection presents and trusts (PEM text). An empty `ca` means the system's
    trust store; an empty `cert` means no client certificate."""

    ca: str = ""
    cert: str = ""
    key: str = field(default="", repr=False)
    sni: str = ""

    def options(self, directory: Path, prefix: str) -> TlsOptions:
        """The syncer's TLS options, the PEM text written to private files under `directory`."""
        cert = key = ca = None
        if self.cert and self.key:
            cert = str(write_private(directory / f"{prefix}.crt", self.cert))
            key = str(write_private(directory / f"{prefix}.key", self.key))
        if self.ca:
            ca = str(write_private(directory / f"{prefix}-server.crt", self.ca))
        return TlsOptions(cert=cert, key=key, ca=ca, sni=self.sni or None)


def _pem(kind: str) -> tuple[str, str]:
    cert = Certificate.objects.filter(kind=kind).first()
    return (cert.certificate_pem, cert.private_key_pem) if cert else ("", "")


def source_client_material(*, server_cert: str, internal: bool, sni: str = "") -> TlsMaterial:
    """For a Replica Of source: present the syncer certificate; trust `server_cert`, or this
    cluster's proxy certificate when the source is one of its databases and none was given."""
    cert, key = _pem(Certificate.Kind.SYNCER)
    ca = server_cert
    if not ca and internal:
        ca = _pem(Certificate.Kind.PROXY)[0]
    return TlsMaterial(ca=ca, cert=cert, key=key, sni=sni)


def own_database_client_material() -> TlsMaterial:
    """For one of this cluster's databases (a destination the syncer writes into)."""
    return source_client_material(server_cert="", internal=True)


def database_tls_spec(database: Database) -> TlsSpec | None:
    """The TLS settings of a database's endpoint, or None when it serves plain connections."""
    if database.tls_mode == TlsMode.DISABLED:
        return None
    proxy_cert, proxy_key = _pem(Certificate.Kind.PROXY)
    syncer_cert, syncer_key = _pem(Certificate.Kind.SYNCER)
    trusted = "\n".join(p for p in (syncer_cert.strip(), database.client_certificates.strip()) if p)
    return TlsSpec(
        cert=proxy_cert,
        key=proxy_key,
        trusted=trusted,
        auth_clients=database.enforce_client_authentication,
        client_cert=syncer_cert,
        client_key=syncer_key,
        all_connections=database.tls_mode == TlsMode.ENABLED,
    )
