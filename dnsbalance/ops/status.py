"""What the balancer is doing, as one JSON-ready dict: the status page, the JSON API and the metrics
are all made from it."""
from __future__ import annotations

from typing import Any

from dnsbalance.configuration.model import Config, archives_of, fallback_archive, health_key, mirror_key
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import fail_open_names, status_of, usable
from dnsbalance.stats.counters import Totals
from health.cycle import CycleReport
from health.state import HealthState


def _health(state: HealthState, key: str) -> dict[str, Any]:
    mirror = state.mirrors.get(key)
    if mirror is None:
        return {"up": True, "reason": "pending: not judged yet", "lag": None, "since": None, "checked": None}
    return {"up": mirror.up, "reason": mirror.reason, "lag": mirror.lag, "since": mirror.since,
            "checked": mirror.checked}


def _archives(config: Config, health: HealthState, verdicts: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Health per archive the mirror carries: up, syncing, down or pending, and why."""
    mirror = config.mirrors[name]
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    rows = []
    for archive in archives:
        url = mirror.url_for(archive, fallback)
        if not url:
            continue
        key = mirror_key(name, archive)
        judged = verdicts.get(key)
        ref = health.archives.get(archive.name)
        rows.append({"archive": archive.name, "key": key, "url": url,
                     "status": status_of(config, mirror, health.view(), key).value, **_health(health, key),
                     "stamp": judged.stamp.describe() if judged and judged.stamp else None,
                     "reference": ref.serial if ref else None})
    return rows


def _regions(table: ActiveTable, totals: Totals) -> list[dict[str, Any]]:
    regions = []
    for label, tier in table.labelled_tiers():
        pools = []
        for (name, rtype), pool in sorted({**tier.usable, **tier.fail_open}.items()):
            total = sum(pool.weights)
            firsts = {c.name: totals.first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            answered = sum(firsts.values())
            pools.append({
                "name": name, "type": rtype.name, "fail_open": pool.fail_open, "first_answers": answered,
                "entries": [{
                    "target": c.name, "weight": c.weight, "configured_share": c.weight / total if total else 0.0,
                    "observed_share": firsts[c.name] / answered if answered else None,
                    "answers": totals.answers.get((label, name, rtype.name, c.name), 0),
                    "addresses": list(c.addresses), "port": c.port or None, "tier": c.tier,
                } for c in pool.candidates],
            })
        if pools:
            regions.append({"region": label, "pools": pools})
    return regions


def status(config: Config, table: ActiveTable, health: HealthState, cycle: CycleReport | None, totals: Totals,
           built_at: float, now: float) -> dict[str, Any]:
    verdicts = {v.name: v for v in cycle.verdicts} if cycle else {}
    mirrors = []
    for name, mirror in sorted(config.mirrors.items()):
        judged = verdicts.get(name)
        mirrors.append({
            "name": name, "addresses": [*mirror.ipv4, *mirror.ipv6], "url": mirror.url,
            "admin_state": mirror.state.value, "usable": usable(mirror, health.view()),
            **_health(health, name),
            "last_status": judged.status if judged else None,
            "last_latency": judged.latency if judged else None,
            "last_error": None if judged is None or judged.ok else judged.reason,
            "stamp": judged.stamp.describe() if judged and judged.stamp else None,
            "archives": _archives(config, health, verdicts, name),
        })
    relays = []
    for name, relay in sorted(config.relays.items()):
        for service in relay.services():
            key = health_key(name, service)
            judged = verdicts.get(key)
            relays.append({
                "name": name, "service": service, "port": relay.port(service),
                "addresses": [*relay.ipv4, *relay.ipv6], "admin_state": relay.state.value,
                "usable": usable(relay, health.view(), service), **_health(health, key),
                "last_error": None if judged is None or judged.ok else judged.reason,
            })
    queries = sum(totals.queries.values())
    located = sum(n for (_, _, country, _), n in totals.queries.items() if country)
    return {
        "zone": config.settings.zone,
        "generation": table.generation,
        "table_age_seconds": max(0.0, now - built_at),
        "fail_open": fail_open_names(table),  # default-table names served with health ignored
        "last_cycle": None if cycle is None else {
            "started": cycle.started, "duration": cycle.duration, "master": cycle.master_note,
        },
        "mirrors": mirrors,
        "relays": relays,
        "regions": _regions(table, totals),
        "queries": {
            "total": queries,
            "no_country_share": (queries - located) / queries if queries else None,
            "ecs": totals.ecs,
            "unique_clients": totals.clients.count(),
        },
    }
