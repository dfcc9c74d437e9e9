"""`dnsbalance stats`: the query counters on disk as a report, pure."""
from __future__ import annotations

from collections import Counter

from dnsbalance.configuration.model import Config
from dnsbalance.ranking.build import build_table
from dnsbalance.stats.counters import Totals
from health.view import ALL_USABLE


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def report(config: Config, totals: Totals) -> list[str]:
    queries = sum(totals.queries.values())
    countries: Counter = Counter()
    continents: Counter = Counter()
    rcodes: Counter = Counter()
    for (qtype, rcode, country, continent), count in totals.queries.items():
        countries[country or "none"] += count
        continents[continent or "none"] += count
        rcodes[f"{qtype} {rcode}"] += count
    lines = [
        f"queries            {queries}",
        f"distinct clients   about {totals.clients.count()} (client subnets, or resolvers without one)",
        f"with no country    {_share(countries['none'], queries).strip()}",
        f"located by ECS     {_share(totals.ecs, queries).strip()}",
        "",
        "by country:   " + ", ".join(f"{c} {n} ({_share(n, queries).strip()})" for c, n in countries.most_common()),
        "by continent: " + ", ".join(f"{c} {n} ({_share(n, queries).strip()})" for c, n in continents.most_common()),
        "by type:      " + ", ".join(f"{k} {n}" for k, n in rcodes.most_common()),
    ]
    # Configured weights (health ignored) next to the observed share of first answers, per region and name.
    table = build_table(config, ALL_USABLE, 0, 0)
    for label, tier in table.labelled_tiers():
        for (name, rtype), pool in sorted(tier.usable.items()):
            firsts = {c.name: totals.first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            answered = sum(firsts.values())
            if not answered:
                continue
            total = sum(pool.weights)
            lines += ["", f"{label}: {name} {rtype.name}, {answered} answers",
                      f"  {'target':<16} {'weight':>6} {'configured':>10} {'observed':>9}"]
            for candidate in pool.candidates:
                lines.append(f"  {candidate.name:<16} {candidate.weight:>6} {_share(candidate.weight, total):>10} "
                             f"{_share(firsts[candidate.name], answered):>9}")
    return lines
