"""The gateway: one HTTPS endpoint for the federation (the plane, each member, fan-out reads
and the REST API), with its own authentication and the plane's and members' authorization."""
