"""The cluster's certificates: generation, parsing and validation of PEM material."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from console.errors import ApplicationError

VALIDITY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    certificate_pem: str
    private_key_pem: str
    subject: str
    san: list[str]
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime


def generate(*, common_name: str, fqdn: str, client: bool) -> CertificateInfo:
    """A self-signed P-256 certificate with SAN (FQDN, localhost, 127.0.0.1, ::1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, fqdn),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(fqdn),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [usage, ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return describe(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def describe(certificate_pem: str, private_key_pem: str) -> CertificateInfo:
    cert = load_certificate(certificate_pem)
    try:
        san_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in san_ext.get_values_for_type(x509.DNSName)] + [
            str(v) for v in san_ext.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        san = []
    return CertificateInfo(
        certificate_pem=certificate_pem,
        private_key_pem=private_key_pem,
        subject=cert.subject.rfc4514_string(),
        san=san,
        fingerprint_sha256=fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def load_certificate(pem: str, *, field: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.strip().encode())
    except ValueError:
        raise ApplicationError("not a PEM-encoded X.509 certificate", field=field) from None


def validate_pair(certificate_pem: str, private_key_pem: str) -> CertificateInfo:
    """Check an uploaded replacement: PEM, the key matches the certificate, not expired."""
    cert = load_certificate(certificate_pem)
    try:
        key = serialization.load_pem_private_key(private_key_pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise ApplicationError(
            "not a PEM-encoded private key (unencrypted PKCS#1, PKCS#8 or SEC1)", field="key"
        ) from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        raise ApplicationError("the private key does not match the certificate", field="key")
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        raise ApplicationError(
            f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}", field="certificate"
        )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ApplicationError("only RSA and EC keys are supported", field="key")
    return describe(certificate_pem.strip() + "\n", private_key_pem.strip() + "\n")
