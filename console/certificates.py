"""The cluster's certificates: generation, parsing and validation of PEM material."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
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


# One certificate or key in PEM is 1-8 KiB (RSA-4096 with a long SAN list stays well under);
# what is larger is not one of them, and would be served to every reader of the API.
PEM_MAX_CHARS = 16 * 1024
# Client certificates a database trusts besides the cluster's own syncer certificate.
MAX_CLIENT_CERTIFICATES = 64
# A little clock difference between the machine that issued a certificate and this one.
CLOCK_SKEW = dt.timedelta(minutes=5)
MIN_RSA_BITS = 2048
EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----",
)
KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"})


NOT_PEM = {
    "certificate": "not a PEM-encoded X.509 certificate",
    "private key": "not a PEM-encoded private key (unencrypted PKCS#1, PKCS#8 or SEC1)",
}


def _one_block(pem: str, *, labels: frozenset[str], what: str, field: str) -> str:
    """The one PEM block of a field: size-capped, nothing before or after it, of a wanted label.
    Returns it alone (the text that is stored and served)."""
    if len(pem) > PEM_MAX_CHARS:
        raise ApplicationError(
            f"a {what} in PEM is at most {PEM_MAX_CHARS // 1024} KiB", field=field
        )
    text = pem.strip()
    blocks = list(PEM_BLOCK.finditer(text))
    if not blocks:
        raise ApplicationError(NOT_PEM[what], field=field)
    if len(blocks) > 1:
        raise ApplicationError(
            f"exactly one PEM block is expected, {len(blocks)} were given: one {what}", field=field
        )
    block = blocks[0]
    if text[: block.start()].strip() or text[block.end() :].strip():
        raise ApplicationError(f"text before or after the {what}'s PEM block", field=field)
    if block.group(1) not in labels:
        raise ApplicationError(
            f"a PEM block of type {block.group(1)!r} where a {what} is expected", field=field
        )
    return block.group(0)


def _check_key_strength(key: object, *, field: str) -> None:
    """RSA of at least 2048 bits or EC on P-256, P-384 or P-521."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ApplicationError(
                f"an RSA key of {key.key_size} bits is too weak: use at least {MIN_RSA_BITS}",
                field=field,
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, EC_CURVES):
            raise ApplicationError(
                f"EC curve {key.curve.name} is not accepted: use P-256, P-384 or P-521",
                field=field,
            )
        return
    raise ApplicationError(
        "only RSA (2048 bits or more) and EC (P-256, P-384, P-521) keys are accepted", field=field
    )


def load_certificate(pem: str, *, field: str = "certificate") -> x509.Certificate:
    """One X.509 certificate in PEM (nothing else in the text), with a strong key, signed with
    SHA-2, valid now."""
    block = _one_block(pem, labels=frozenset({"CERTIFICATE"}), what="certificate", field=field)
    try:
        cert = x509.load_pem_x509_certificate(block.encode())
        public_key = cert.public_key()
        hash_name = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else ""
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ApplicationError(NOT_PEM["certificate"], field=field) from None
    _check_key_strength(public_key, field=field)
    if hash_name in {"md5", "sha1"}:
        raise ApplicationError(
            f"the certificate is signed with {hash_name.upper()}: use SHA-256 or stronger",
            field=field,
        )
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_before_utc > now + CLOCK_SKEW:
        raise ApplicationError(
            f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            field=field,
        )
    if cert.not_valid_after_utc <= now:
        raise ApplicationError(
            f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            field=field,
            code="certificate_expired",
        )
    return cert


def certificate_text(pem: str, *, field: str) -> str:
    """A checked certificate (`load_certificate`) as the text to store: its one PEM block."""
    cert = load_certificate(pem, field=field)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def validate_pair(certificate_pem: str, private_key_pem: str) -> CertificateInfo:
    """Check an uploaded replacement: one certificate (`load_certificate`), one unencrypted
    private key of the same strength rules, the key matches the certificate."""
    cert_text = certificate_text(certificate_pem, field="certificate")
    cert = x509.load_pem_x509_certificate(cert_text.encode())
    key_block = _one_block(private_key_pem, labels=KEY_LABELS, what="private key", field="key")
    try:
        key = serialization.load_pem_private_key(key_block.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ApplicationError(NOT_PEM["private key"], field="key") from None
    _check_key_strength(key, field="key")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        raise ApplicationError("the private key does not match the certificate", field="key")
    return describe(cert_text, key_block + "\n")
