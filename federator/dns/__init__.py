"""The embedded authoritative DNS server and the RFC 2136 provider."""
