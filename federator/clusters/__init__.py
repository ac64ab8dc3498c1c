"""The cluster registry: Cluster objects to clients, health probing, join and unjoin."""
