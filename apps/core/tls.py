"""The self-signed certificate `manage.py serve` creates on first start (ACS SDKs need TLS)."""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _subject_names(public_host: str, resource_domain: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if resource_domain:
        names.append(x509.DNSName(f"*.{resource_domain}"))
    try:
        address = ipaddress.ip_address(public_host.strip("[]"))
    except ValueError:
        if public_host != "localhost":
            names.append(x509.DNSName(public_host))
    else:
        if x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    return names


def _covers(cert_path: Path, names: list[x509.GeneralName]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(name in present for name in names)


def ensure_self_signed(
    cert_path: Path, key_path: Path, public_host: str, resource_domain: str = ""
) -> bool:
    """Create a certificate for localhost, 127.0.0.1, `public_host` and every resource's name
    under `resource_domain`, unless one that covers them exists (one made for other names is
    replaced). Returns True when a new certificate was written.
    """
    names = _subject_names(public_host, resource_domain)
    if cert_path.exists() and key_path.exists() and _covers(cert_path, names):
        return False
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, public_host or "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spool (self-signed)"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True
