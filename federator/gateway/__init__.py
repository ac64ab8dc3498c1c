"""The aiohttp gateway: plane proxy, per-cluster proxy, fan-out reads, REST API, auth."""
