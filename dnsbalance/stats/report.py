"""`dnsbalance stats`: the query counters on disk as a report, pure."""
from __future__ import annotations

import time
from collections import Counter

from dnsbalance.configuration.model import Config
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table
from dnsbalance.stats.counters import RECENT_WINDOW, Totals
from dnsbalance.health.view import ALL_USABLE


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def report(config: Config, totals: Totals, table: ActiveTable | None = None,
           now: float | None = None) -> list[str]:
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
    # "configured": weight over the usable entries' weight (health-adjusted, as the table draws), next to
    # the observed share of first answers since the counters' reset, per region and name.
    table = table if table is not None else build_table(config, ALL_USABLE, 0, 0)
    now = time.time() if now is None else now
    recent_first = totals.recent_first(now)
    lines += ["", "configured = weight share among the usable entries (health-adjusted); observed = share of first "
              "answers since the counters' reset" + (f" at {time.ctime(totals.reset_at)}" if totals.reset_at else "")]
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
            if rtype in (RType.A, RType.AAAA):
                result = table.variants(pool, rtype).design
                if not result.exact:
                    lines.append(f"  delivered at clients with at least {result.minimum} addresses: " + ", ".join(
                        f"{c.name} {100 * float(d):.1f}%" for c, d in zip(pool.candidates, result.delivered)))
            recent = {c.name: recent_first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            recently = sum(recent.values())
            if recently:
                lines.append(f"  last {RECENT_WINDOW // 60} minutes, {recently} answers: " + ", ".join(
                    f"{n} {_share(k, recently).strip()}" for n, k in recent.items()))
    return lines
