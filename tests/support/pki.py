"""Certificates for tests: self-signed, with the key type and validity window a test asks for
(PEM text, as an operator pastes it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pem:
    certificate: str
    key: str


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: Any, from_days: float, until_days: float
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=from_days))
        .not_valid_after(now + dt.timedelta(days=until_days))
    )


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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
    name = _cn(common_name)
    cert = (
        _builder(name, name, key.public_key(), valid_from_days, valid_until_days)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


@dataclass(frozen=True)
class Issued:
    """A certificate issued by a test CA (`make_ca`), with its CA's certificate, all PEM."""

    certificate: str
    key: str
    ca: str

    def write(self, directory: Path, name: str) -> tuple[str, str, str]:
        """Write `<name>.crt`, `<name>.key` and `<name>-ca.crt`; returns their paths."""
        paths = [directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}-ca.crt"]
        for path, text in zip(paths, (self.certificate, self.key, self.ca), strict=True):
            path.write_text(text)
        return str(paths[0]), str(paths[1]), str(paths[2])


@dataclass(frozen=True)
class Authority:
    """A certificate authority of its own, to issue server and client certificates."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self, common_name: str, *, valid_from_days: float = -1, valid_until_days: float = 30
    ) -> Issued:
        """A leaf certificate for `common_name` (also its DNS name), EC P-256, valid from/until
        so many days from now (both negative: already expired)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject, issuer = _cn(common_name), self.certificate.subject
        cert = (
            _builder(subject, issuer, key.public_key(), valid_from_days, valid_until_days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        return Issued(cert_pem, _key_pem(key), self.pem)


def make_ca(common_name: str = "test-ca") -> Authority:
    """A self-signed CA certificate (valid from yesterday for 30 days)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _cn(common_name)
    cert = (
        _builder(name, name, key.public_key(), -1, 30)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)
