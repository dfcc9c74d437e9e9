"""Where a client is: its EDNS Client Subnet (RFC 7871) or its resolver's address, through one GeoIP
reader, with the answers cached. One Locator belongs to one serving snapshot, so a query never mixes the
reader of one configuration with the tables of another."""
from __future__ import annotations

import ipaddress

from dnsbalance.geo.locate import UNKNOWN, GeoIP, Location
from dnsbalance.protocol.edns import Edns, Subnet, subnet_address

CACHE_LIMIT = 1 << 16  # client addresses and subnets remembered per snapshot


class Locator:
    def __init__(self, geoip: GeoIP, ecs: bool) -> None:
        self.geoip = geoip
        self.ecs = ecs
        self._by_source: dict[str, Location] = {}
        self._by_subnet: dict[Subnet, Location] = {}

    def used_subnet(self, edns: Edns | None) -> Subnet | None:
        """The client subnet as the fast path reads it, if the query sent one and ECS is on."""
        subnet = edns.client_subnet if edns is not None else None
        if subnet is None or not self.ecs:
            return None
        return Subnet(subnet.family, subnet.source_prefix,
                      subnet.address.packed[: (subnet.source_prefix + 7) // 8])

    def locate(self, client: str, subnet: Subnet | None) -> tuple[Location, int | None]:
        """Where the client is, and the ECS scope to echo when its subnet decided (RFC 7871: a /0 subnet
        means use the resolver's address, scope 0)."""
        if subnet is None:
            location = self._by_source.get(client)
            if location is None:
                location = _remember(self._by_source, client, self._locate_source(client))
            return location, None
        if subnet.source == 0:  # RFC 7871 7.1.2: the client asked that no subnet be used
            return self.locate(client, None)[0], 0
        location = self._by_subnet.get(subnet)
        if location is None:
            location = _remember(self._by_subnet, subnet,
                                 self.geoip.locate(subnet_address(subnet.family, subnet.raw)))
        return location, location.prefix_len

    def _locate_source(self, client: str) -> Location:
        try:
            return self.geoip.locate(ipaddress.ip_address(client.split("%", 1)[0]))
        except ValueError:
            return UNKNOWN


def _remember(cache: dict, key: object, location: Location) -> Location:  # type: ignore[type-arg]
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = location
    return location
