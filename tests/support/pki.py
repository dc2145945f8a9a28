"""Certificates for tests: self-signed, with the key type and validity window a test asks for
(PEM text, as an operator pastes it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pem:
    certificate: str
    key: str


def make_certificate(
    *,
    rsa_bits: int | None = None,
    curve: ec.EllipticCurve | None = None,
    valid_from_days: float = -1,
    valid_until_days: float = 30,
    common_name: str = "test.example",
) -> Pem:
    """A self-signed certificate: EC P-256 unless `rsa_bits` or `curve` say otherwise, valid
    from/until so many days from now (negative: in the past)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if rsa_bits is not None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        key = ec.generate_private_key(curve or ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=valid_from_days))
        .not_valid_after(now + dt.timedelta(days=valid_until_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)
