"""Reconcilers: propagation, workload spreading, status, events and DNS."""
