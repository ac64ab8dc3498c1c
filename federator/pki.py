"""Certificates and keys of apiservers federator runs (the lab's, a plane in a host cluster):
one CA, serving pairs, client pairs and service-account signing keys, as files in one
directory. Nothing here talks to a cluster."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
ADMIN_USER = "federator-lab-admin"
ADMIN_GROUP = "system:masters"
# Names every apiserver answers to: loopback for us, the in-cluster names for pods.
APISERVER_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # SEC1 ("EC PRIVATE KEY"): the form Kubernetes reads for service-account keys too.
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(_key_pem(key))
    path.chmod(0o600)


def _name(common: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    return x509.Name(attrs)


def new_ca(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY * 10)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, common_name: str, *,
          orgs: tuple[str, ...] = (), server: bool, dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), validity: datetime.timedelta = VALIDITY
          ) -> tuple[bytes, bytes]:
    """A serving or client pair signed by the CA: (certificate PEM, key PEM). For clients
    of an apiserver, the common name is the user and each organization a group."""
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, orgs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


class PKI:
    """A CA and what it issued, in one directory. Creating is idempotent: what exists is kept."""

    def __init__(self, directory: Path, ca_name: str = "federator-lab-ca") -> None:
        self.dir = directory
        self.ca_name = ca_name
        self.ca = Pair(directory / "ca.crt", directory / "ca.key")

    def ensure_ca(self) -> None:
        if self.ca.cert.exists() and self.ca.key.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        cert, key = new_ca(self.ca_name)
        self._write(self.ca, cert, key)

    @staticmethod
    def _write(pair: Pair, cert: bytes, key: bytes) -> None:
        pair.key.write_bytes(key)
        pair.key.chmod(0o600)
        pair.cert.write_bytes(cert)

    def _issue(self, stem: str, common_name: str, *, orgs: tuple[str, ...] = (),
               server: bool, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Pair:
        pair = Pair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        self.ensure_ca()
        cert, key = issue(self.ca.cert.read_bytes(), self.ca.key.read_bytes(), common_name,
                          orgs=orgs, server=server, dns=dns, ips=ips)
        self._write(pair, cert, key)
        return pair

    def apiserver(self, cluster: str, service_ip: str, *, dns: tuple[str, ...] = (),
                  ips: tuple[str, ...] = ()) -> Pair:
        """The serving pair of one cluster's apiserver: loopback, the in-cluster names, and
        any further names and addresses it is reached by."""
        return self._issue(f"apiserver-{cluster}", f"kube-apiserver-{cluster}",
                           server=True, dns=APISERVER_DNS + dns,
                           ips=("127.0.0.1", service_ip, *ips))

    def kubelet(self, cluster: str, ips: tuple[str, ...]) -> Pair:
        """The serving pair of a member's fake kubelets (kwok): its nodes' addresses. Issued
        anew each time (the member may have other nodes than when it was last up)."""
        for old in (self.dir / f"kubelet-{cluster}.crt", self.dir / f"kubelet-{cluster}.key"):
            old.unlink(missing_ok=True)
        return self._issue(f"kubelet-{cluster}", f"kubelet-{cluster}", server=True,
                           ips=("127.0.0.1", *ips))

    def admin(self) -> Pair:
        """A client pair in group system:masters, accepted by every apiserver of this CA."""
        return self._issue("admin", ADMIN_USER, orgs=(ADMIN_GROUP,), server=False)

    def service_account_key(self, cluster: str) -> Path:
        """The key that signs one cluster's service-account tokens (its public half is derived
        by the apiserver from the same file)."""
        path = self.dir / f"sa-{cluster}.key"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_key(_key(), path)
        return path
