"""What the balancer is doing, as one JSON-ready dict: the status page, the JSON API and the metrics
are all made from it."""
from __future__ import annotations

from typing import Any, Mapping

from dnsbalance.configuration.model import Config, Level, archives_of, fallback_archive, health_key, mirror_key
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable, PoolLabel
from dnsbalance.ranking.build import fail_open_names, status_of, usable
from dnsbalance.stats.counters import RECENT_WINDOW, Totals
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


def selects(config: Config, label: str) -> str:
    """Which clients a table serves, as the status page and `explain` say it."""
    level, _, code = label.partition(" ")
    if level == Level.NETWORK.value and code in config.networks:
        return "clients inside " + ", ".join(str(n) for n in config.networks[code].networks)
    if level == Level.ASN.value:
        return f"clients in {code} (ASN database {config.settings.geoip.asn_database})"
    if level == Level.COUNTRY.value:
        return f"clients GeoIP places in country {code}"
    if level == Level.CONTINENT.value:
        return f"clients GeoIP places in continent {code}"
    return "every other client"


def _regions(table: ActiveTable, totals: Totals, now: float, changed: Mapping[PoolLabel, float],
             config: Config) -> list[dict[str, Any]]:
    regions = []
    recent_first = totals.recent_first(now)
    for label, tier in table.labelled_tiers():
        pools = []
        for (name, rtype), pool in sorted({**tier.usable, **tier.fail_open}.items()):
            total = sum(pool.weights)
            firsts = {c.name: totals.first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            answered = sum(firsts.values())
            recent = {c.name: recent_first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            recently = sum(recent.values())
            # since this pool's entries or weights last changed (at most the recent window: older buckets
            # are not kept)
            since = changed.get((label, name, rtype.name), 0.0)
            fresh = totals.recent_first(now, min(RECENT_WINDOW, max(0.0, now - since)))
            after = {c.name: fresh.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            after_total = sum(after.values())
            # A/AAAA: what the answer sets deliver at clients (differs where min_answers bends the weights)
            delivered: list[float] = (
                list(table.variants(pool, rtype).delivered) if rtype in (RType.A, RType.AAAA)
                else [c.weight / total if total else 0.0 for c in pool.candidates])
            pools.append({
                "name": name, "type": rtype.name, "fail_open": pool.fail_open, "first_answers": answered,
                "recent_first_answers": recently, "changed_at": since or None,
                "first_answers_since_change": after_total,
                "entries": [{
                    "target": c.name, "weight": c.weight, "configured_share": c.weight / total if total else 0.0,
                    "delivered_share": share,
                    "observed_share": firsts[c.name] / answered if answered else None,
                    "recent_observed_share": recent[c.name] / recently if recently else None,
                    "observed_share_since_change": after[c.name] / after_total if after_total else None,
                    "answers": totals.answers.get((label, name, rtype.name, c.name), 0),
                    "addresses": list(c.addresses), "port": c.port or None, "tier": c.tier,
                } for c, share in zip(pool.candidates, delivered)],
            })
        if pools:
            regions.append({"region": label, "selects": selects(config, label), "pools": pools})
    return regions


def status(config: Config, table: ActiveTable, health: HealthState, cycle: CycleReport | None, totals: Totals,
           built_at: float, now: float, changed: Mapping[PoolLabel, float] | None = None) -> dict[str, Any]:
    """`changed`: when each pool's entries or weights last changed (the balancer tracks it)."""
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
        # configured_share: weight over the usable entries' weight (health-adjusted, as the table draws);
        # observed_share: first answers since the counters' reset (or first start), recent_: last window
        "shares": {"configured": "health-adjusted weight share", "observed_since": totals.reset_at or None,
                   "recent_window_seconds": RECENT_WINDOW},
        "regions": _regions(table, totals, now, changed or {}, config),
        "queries": {
            "total": queries,
            "no_country_share": (queries - located) / queries if queries else None,
            "ecs": totals.ecs,
            "unique_clients": totals.clients.count(),
        },
    }
