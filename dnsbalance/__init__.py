"""dnsbalance: a GeoIP-aware authoritative DNS load balancer for mirror CDNs."""

__version__ = "0.1.0"
