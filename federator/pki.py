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


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    # SEC1 ("EC PRIVATE KEY"): the form Kubernetes reads for service-account keys too.
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


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
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        name = _name(self.ca_name)
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
        _write_key(key, self.ca.key)
        self.ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, stem: str, subject: x509.Name, *, server: bool,
               dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Pair:
        pair = Pair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        self.ensure_ca()
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(key, pair.key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def apiserver(self, cluster: str, service_ip: str, *, dns: tuple[str, ...] = (),
                  ips: tuple[str, ...] = ()) -> Pair:
        """The serving pair of one cluster's apiserver: loopback, the in-cluster names, and
        any further names and addresses it is reached by."""
        return self._issue(f"apiserver-{cluster}", _name(f"kube-apiserver-{cluster}"),
                           server=True, dns=APISERVER_DNS + dns,
                           ips=("127.0.0.1", service_ip, *ips))

    def admin(self) -> Pair:
        """A client pair in group system:masters, accepted by every apiserver of this CA."""
        return self._issue("admin", _name(ADMIN_USER, ADMIN_GROUP), server=False)

    def service_account_key(self, cluster: str) -> Path:
        """The key that signs one cluster's service-account tokens (its public half is derived
        by the apiserver from the same file)."""
        path = self.dir / f"sa-{cluster}.key"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_key(_key(), path)
        return path
