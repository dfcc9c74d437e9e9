"""The network-table lookup: for any set of prefixes and any address, the tables it finds are those a
linear scan finds, longest prefix first, and every address inside the scope it gives finds the same."""
from __future__ import annotations

import ipaddress
import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dnsbalance.geo.prefixes import NetworkMap


def _scan(tables: dict[str, list[ipaddress.IPv4Network]], address: ipaddress.IPv4Address) -> tuple[str, ...]:
    hits = sorted(((n.prefixlen, name) for name, networks in tables.items() for n in networks if address in n),
                  reverse=True)
    return tuple(dict.fromkeys(name for _, name in hits))


# Small addresses and prefixes crowd the prefixes together, so they nest and touch often.
prefix = st.builds(lambda value, length: ipaddress.IPv4Network((value << 24, length), strict=False),
                   st.integers(0, 255), st.integers(1, 12))
tables_strategy = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.lists(prefix, min_size=1, max_size=4),
                                  max_size=4)


@settings(max_examples=300, deadline=None)
@given(tables_strategy, st.integers(0, (1 << 32) - 1), st.integers(0, 1 << 30))
def test_lookup_matches_a_scan_and_holds_over_its_scope(tables: dict, value: int, seed: int) -> None:
    listed = [n for networks in tables.values() for n in set(networks)]
    assume(len(listed) == len(set(listed)))  # the same prefix in two tables is a check error
    networks = NetworkMap(tables)
    address = ipaddress.IPv4Address(value)
    found = networks.match(address)
    assert found.tables == _scan(tables, address)
    assert all(found.scope >= n.prefixlen for n in found.prefixes)  # never shorter than a matching prefix
    block = ipaddress.ip_network(f"{address}/{found.scope}", strict=False)
    rng = random.Random(seed)
    for _ in range(20):
        other = ipaddress.IPv4Address(int(block.network_address) + rng.randrange(block.num_addresses))
        assert _scan(tables, other) == found.tables, (other, block)

def test_no_tables_no_scope() -> None:
    assert NetworkMap({}).match(ipaddress.ip_address("192.0.2.1")).scope == 0
    mapped = NetworkMap({"v6": [ipaddress.ip_network("2001:db8::/32")]})
    assert mapped.match(ipaddress.ip_address("192.0.2.1")).tables == ()
    assert mapped.match(ipaddress.ip_address("2001:db8::1")).scope == 32
