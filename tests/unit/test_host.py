from __future__ import annotations

import base64
from pathlib import Path

import yaml
from cryptography import x509

from federator.clusters.host import HostOptions, load, pki_secret
from federator.pki import PKI


def test_manifests_run_the_plane_and_federator() -> None:
    objects = load(HostOptions(namespace="fed", service_type="NodePort",
                               federator_image="registry.example/federator:1"))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds[0] == ("Namespace", "fed")
    assert ("StatefulSet", "federation-etcd") in kinds
    assert all(o["metadata"].get("namespace", "fed") == "fed" for o in objects)
    by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    apiserver = by_name["federation-apiserver"]["spec"]["template"]["spec"]["containers"][0]
    assert apiserver["image"] == "registry.k8s.io/kube-apiserver:v1.33.13"
    kcm = by_name["federation-controller-manager"]["spec"]["template"]["spec"]["containers"][0]
    assert ("--controllers=namespace,garbagecollector,clusterrole-aggregation,pvc-protection,"
            "pv-protection") in kcm["command"]
    federator = by_name["federator"]["spec"]["template"]["spec"]
    assert federator["containers"][0]["image"] == "registry.example/federator:1"
    assert federator["securityContext"]["runAsNonRoot"] is True
    assert by_name["federator"]["spec"]["replicas"] == 2
    service = next(o for o in objects if o["metadata"]["name"] == "federation-apiserver"
                   and o["kind"] == "Service")
    assert service["spec"]["type"] == "NodePort"


def test_pki_secret_holds_no_ca_key_and_names_the_service(tmp_path: Path) -> None:
    options = HostOptions(namespace="fed", advertise_address="plane.example.com")
    secret = pki_secret(options, PKI(tmp_path, ca_name="federation-ca"))
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert "ca.key" not in data
    cert = x509.load_pem_x509_certificate(data["apiserver.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert "federation-apiserver.fed.svc" in dns and "plane.example.com" in dns
    inside = yaml.safe_load(data["kubeconfig"])
    assert inside["clusters"][0]["cluster"]["server"] == "https://federation-apiserver.fed.svc:443"
