"""federator: a multi-cluster federation control plane and gateway for Kubernetes."""

__version__ = "0.1.0"
