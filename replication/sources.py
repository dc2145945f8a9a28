"""A source as the operator gives it: the value that forms, the API and services pass around."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from replication.models import ReplicaSource
from replication.syncer.gateway import DEFAULT_GATEWAY_PORT, GatewayOptions

MAX_SOURCES = 32


@dataclass(frozen=True, slots=True)
class SourceInput:
    """One wanted source, as the operator gave it (shape already checked)."""

    source_database_uid: int | None = None
    uri: str = ""
    compression: int = 0
    encryption: bool = False
    server_cert: str = ""
    client_cert: str = ""
    replication_tls_sni: str = ""
    gateway_port: int | None = None  # compression through a gateway on a port not the default


def gateway_options(
    *, compression: int, gateway_port: int | None, internal: bool
) -> GatewayOptions | None:
    """Compression goes through the sync gateway of the source's host: its port given on the
    source, else the default one (this cluster's own port for its own databases); the level is
    the source's compression. The sync job and the connection check use the same."""
    if not compression:
        return None
    port = gateway_port
    if port is None:
        port = settings.GATEWAY_PORT if internal else DEFAULT_GATEWAY_PORT
    return GatewayOptions(port, compression)


def source_input_of(source: ReplicaSource) -> SourceInput:
    """A saved source as the input that would save it again (to compare or keep it)."""
    return SourceInput(
        source_database_uid=source.source_database_id,
        uri="" if source.source_database_id else source.external_uri,
        compression=source.compression,
        encryption=source.encryption,
        server_cert=source.server_cert,
        client_cert=source.client_cert,
        replication_tls_sni=source.replication_tls_sni,
        gateway_port=source.gateway_port,
    )
