"""Names, labels and annotations of the federation, and the checks on names users give."""

from __future__ import annotations

import re

FEDERATION_NAMESPACE = "federation-system"
CONFIG_NAME = "federator"  # ConfigMap in FEDERATION_NAMESPACE: federation name, DNS zone
MANAGED_BY = "federator.io/managed-by"  # label on what federator writes into members
PLANE_UID = "federator.io/plane-uid"  # annotation: uid of the plane object a copy comes from
CLUSTER_LABEL = "federator.io/cluster"  # label on a member's credentials Secret in the plane
REGION_LABEL = "topology.kubernetes.io/region"  # on nodes
ZONE_LABEL = "topology.kubernetes.io/zone"
MEMBER_TOKEN_SECRET = "federator-token"  # noqa: S105 (a name, not a secret)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def cluster_secret_name(cluster: str) -> str:
    """The plane Secret that holds a member's server, CA and token."""
    return f"cluster-{cluster}"


def dns_label_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label (usable as a cluster name), or None."""
    if _DNS_LABEL.match(value):
        return None
    return (f"{value!r} is not a valid name: use at most 63 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit")


def parse_label(text: str) -> tuple[str, str]:
    """`key=value` as a Kubernetes label, or ValueError saying what is wrong."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"label {text!r}: write it as key=value")
    prefix, slash, name = key.rpartition("/")
    if slash and not _DNS_SUBDOMAIN.match(prefix):
        raise ValueError(f"label {text!r}: prefix {prefix!r} is not a DNS subdomain")
    if not _LABEL_NAME.match(name):
        raise ValueError(f"label {text!r}: name {name!r} must be at most 63 letters, digits, "
                         "'-', '_' or '.', starting and ending with a letter or digit")
    if not _LABEL_VALUE.match(value):
        raise ValueError(f"label {text!r}: value {value!r} must be at most 63 letters, digits, "
                         "'-', '_' or '.', starting and ending with a letter or digit")
    return key, value
