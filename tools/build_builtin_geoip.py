#!/usr/bin/env python3
"""Rebuild the built-in GeoIP database and country table shipped in dnsbalance/geo/data.

Sources, all installable from Debian's registry:
  tor-geoipdb      /usr/share/tor/geoip, geoip6: IPFire Location country ranges (CC BY-SA 4.0)
  location         `location list-countries --show-continent` over libloc-database: continents
  iso-codes        /usr/share/iso-codes/json/iso_3166-1.json: alpha-2 / alpha-3 codes

    apt-get install tor-geoipdb location libloc-database iso-codes
    pip install mmdb-writer
    python tools/build_builtin_geoip.py
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPAddress, IPRange, IPSet

DATA = Path(__file__).resolve().parent.parent / "dnsbalance" / "geo" / "data"
TOR = Path("/usr/share/tor")
ISO = Path("/usr/share/iso-codes/json/iso_3166-1.json")
LOCATION_DB = "/usr/share/libloc-location/location.db"


def continents() -> dict[str, str]:
    out = subprocess.run(
        ["location", "--database", LOCATION_DB, "list-countries", "--show-continent"],
        check=True, capture_output=True, text=True,
    ).stdout
    return dict(line.split()[:2] for line in out.splitlines() if line.strip())


def data_date() -> str:
    for line in (TOR / "geoip").open(encoding="utf-8"):
        m = re.match(r"#\s*Generated:\s*(.+)", line)
        if m:
            return m.group(1).strip()
    return "unknown"


def ranges(path: Path, ipv4: bool) -> dict[str, list[IPRange]]:
    by_country: dict[str, list[IPRange]] = defaultdict(list)
    for line in path.open(encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        first, last, cc = line.strip().split(",")
        if not re.fullmatch(r"[A-Z]{2}", cc):
            continue  # "??": unknown; leave it out so lookups fall to the default table
        if ipv4:
            by_country[cc].append(IPRange(IPAddress(int(first), 4), IPAddress(int(last), 4)))
        else:
            by_country[cc].append(IPRange(first, last))
    return by_country


def main() -> int:
    cont = continents()
    iso = json.loads(ISO.read_text(encoding="utf-8"))["3166-1"]
    rows = []
    for c in sorted(iso, key=lambda c: c["alpha_2"]):
        rows.append(f"{c['alpha_2']}\t{c['alpha_3']}\t{cont.get(c['alpha_2'], '')}\t{c['name']}")
    (DATA / "countries.tsv").write_text(
        "# alpha2\talpha3\tcontinent\tname  (iso-codes + IPFire libloc continents)\n"
        + "\n".join(rows) + "\n", encoding="utf-8")

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True,
                        database_type="dnsbalance-builtin-Country",
                        description={"en": f"IPFire Location country data via tor-geoipdb ({data_date()}), "
                                           "CC BY-SA 4.0, https://location.ipfire.org/"})
    cidrs: dict[str, list] = defaultdict(list)
    for path, v4 in ((TOR / "geoip", True), (TOR / "geoip6", False)):
        for cc, rs in ranges(path, v4).items():
            cidrs[cc].extend(cidr for r in rs for cidr in r.cidrs())
    merged = {cc: IPSet(cs) for cc, cs in cidrs.items()}  # one IPSet per country: merged once
    for cc, ipset in sorted(merged.items()):
        record: dict = {"country": {"iso_code": cc}}
        if cont.get(cc):
            record["continent"] = {"code": cont[cc]}
        writer.insert_network(ipset, record)
    out = DATA / "builtin-country.mmdb"
    writer.to_db_file(str(out))
    print(f"wrote {out} ({out.stat().st_size} bytes), {len(merged)} countries, data {data_date()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
