"""The self-signed certificate `serve` makes: loopback names, the public host, and every
resource's host name under SPOOL_RESOURCE_DOMAIN."""

from __future__ import annotations

from cryptography import x509

from apps.core.tls import ensure_self_signed


def _dns_names(path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName)


def test_it_covers_the_resource_domain_and_is_remade_only_when_names_change(tmp_path) -> None:
    cert, key = tmp_path / "spool.crt", tmp_path / "spool.key"

    # when made for a resource domain
    assert ensure_self_signed(cert, key, "console.example.org", "acs.example.org")

    # then it covers every resource's name, and is kept while the names hold
    assert {"localhost", "console.example.org", "*.acs.example.org"} <= set(_dns_names(cert))
    first = cert.read_bytes()
    assert not ensure_self_signed(cert, key, "console.example.org", "acs.example.org")
    assert not ensure_self_signed(cert, key, "console.example.org")  # a subset: still covered
    assert cert.read_bytes() == first

    # and a new domain gets a new certificate
    assert ensure_self_signed(cert, key, "console.example.org", "comms.example.net")
    assert "*.comms.example.net" in _dns_names(cert)
