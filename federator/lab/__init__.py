"""Local labs of real Kubernetes clusters (a federation plane and members) for demos and tests."""
