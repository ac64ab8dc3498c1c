from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from federator.pki import ADMIN_GROUP, PKI


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_cert_is_signed_by_the_lab_ca_for_loopback(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    pair = pki.apiserver("member-1", "10.97.0.1")
    ca, cert = load(pki.ca.cert), load(pair.cert)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert (pair.key.stat().st_mode & 0o777) == 0o600


def test_admin_is_in_system_masters(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    cert = load(pki.admin().cert)
    orgs = cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == [ADMIN_GROUP]
    cert.verify_directly_issued_by(load(pki.ca.cert))


def test_creating_again_keeps_what_exists(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    first = pki.admin().cert.read_bytes()
    ca = pki.ca.cert.read_bytes()
    assert PKI(tmp_path).admin().cert.read_bytes() == first
    assert pki.ca.cert.read_bytes() == ca


def test_service_account_keys_differ_per_cluster(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    a, b = pki.service_account_key("a"), pki.service_account_key("b")
    assert a.read_bytes() != b.read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    assert isinstance(load_pem_private_key(a.read_bytes(), None), ec.EllipticCurvePrivateKey)
