"""What apt gets, checked as apt gets it: the stamp file at each address a mirror is served at, asked for under
the name clients use (HTTP Host, and TLS SNI with the certificate checked for that name on https). A verdict per
(mirror, archive, address, host): the table builder answers an address, for a name, only on its own verdict.

Liveness and the right virtual host only: freshness is the mirror stamp check's (one read per mirror).

An address the prober has no route to (no IPv6 where it runs: health/route.py) is not probed and not held
against the mirror: it is "unchecked", and takes the verdict of the mirror's other addresses under the same
name (with none, the mirror's own verdict decides, as the table builder serves it only while that is live)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dnsbalance.configuration.model import Config
from dnsbalance.health.checks.base import Judged, Probing, Target
from dnsbalance.health.checks.master_stamp import stamp_url
from dnsbalance.health.fetch import Fetched, fetch, new_client
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.route import no_route
from dnsbalance.health.served import at_address, served_targets, url_host
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.stamp import looks_like_html, parse_stamp
from dnsbalance.health.verdict import Verdict

NAME = "served"
DAY = 86400.0


@dataclass(frozen=True)
class ServedTarget(Target):
    url: str  # key: health/served.py's served key; url: the stamp URL at the address
    host: str | None  # Host and SNI
    address: str | None
    ca: str | None  # a private CA trusted beside the system's
    owner: str = ""  # the (mirror, archive) health key


@dataclass(frozen=True)
class ServedRead(Observation):
    host: str | None
    address: str | None
    fetched: Fetched | None  # None: not probed, the prober has no route to the address
    owner: str = ""
    no_route: str = ""  # why the prober cannot send to the address at all (ENETUNREACH, EADDRNOTAVAIL)


@dataclass(frozen=True)
class ServedVerdict(Verdict):
    """One address of a (mirror, archive) under one host name."""

    address: str | None = None
    host: str | None = None
    status: int | None = None
    expires: float | None = None  # https: the certificate's notAfter
    # `unchecked` (base Verdict): no route from the prober; judged on the mirror's other addresses


class ServedCheck:
    name = NAME

    def targets(self, config: Config) -> Sequence[ServedTarget]:
        found = []
        for served in served_targets(config):
            url = at_address(stamp_url(served.base, served.stamp), served.address)
            host = served.host or (url_host(served.base) if served.address else None)
            found.append(ServedTarget(served.key, url, host, served.address, config.settings.health.ca,
                                      served.owner))
        return found

    async def observe(self, target: ServedTarget, probing: Probing) -> Observation:
        unroutable = no_route(target.address, probing.source) if target.address else None
        if unroutable:
            return ServedRead(target.key, target.host, target.address, None, target.owner, unroutable)
        if target.url.startswith("https://") and target.host:
            # a connection of its own: a pooled one may have been opened with another name as SNI
            async with new_client(1, target.ca) as client:
                fetched = await fetch(client, target.url, probing.timeout, target.host)
        else:
            fetched = await fetch(probing.client, target.url, probing.timeout, target.host)
        return ServedRead(target.key, target.host, target.address, fetched, target.owner)

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        reads = [read for read in observed.of(NAME).values() if isinstance(read, ServedRead)]
        checked = {read.target: judge_read(read, settings.certificate_days, now)
                   for read in reads if read.fetched is not None}
        verdicts = []
        notes = []
        for read in reads:
            verdict = checked.get(read.target) or judge_unchecked(read, reads, checked)
            verdicts.append(verdict)
            if verdict.ok and verdict.expires is not None and verdict.expires - now < settings.certificate_days * DAY:
                notes.append(f"{read.target}: {verdict.reason}")
        unrouted = sorted({read.address for read in reads if read.fetched is None and read.address})
        if unrouted:
            notes.append(no_route_warning(unrouted))
        return Judged(tuple(verdicts), notes=tuple(notes))


def no_route_warning(addresses: list[str]) -> str:
    """One line for every address the prober cannot reach, whatever the number of mirrors and names."""
    shown = ", ".join(addresses[:5]) + (f" and {len(addresses) - 5} more" if len(addresses) > 5 else "")
    families = "/".join(sorted({"IPv6" if ":" in a else "IPv4" for a in addresses}))
    return (f"WARNING: no route from the prober to {len(addresses)} served address"
            f"{'es' if len(addresses) != 1 else ''} ({families}: {shown}): unchecked, each served on its "
            "mirror's other probes; set health.addresses: false if this prober should not check them")


def judge_unchecked(read: ServedRead, reads: Sequence[ServedRead], checked: Mapping[str, ServedVerdict]
                    ) -> ServedVerdict:
    """An address the prober cannot reach takes the verdict of the mirror's checked addresses under the same
    name: up if any serves it (the mirror does serve the name), down if all fail; up with none checked (the
    mirror's own verdict then decides: the builder serves its addresses only while that is live)."""
    others = [checked[o.target] for o in reads if o.owner == read.owner and o.host == read.host and
              o.target in checked]
    head = f"unchecked: no route from the prober to {read.address} ({read.no_route})"
    base: dict[str, Any] = {"address": read.address, "host": read.host, "unchecked": True}
    if not others:
        return ServedVerdict(read.target, True, f"{head}; served on the mirror's own verdict", **base)
    good = next((o for o in others if o.ok), None)
    if good is not None:
        return ServedVerdict(read.target, True, f"{head}; served as {good.name} is", **base)
    return ServedVerdict(read.target, False, f"{head}; out as the mirror's other addresses are ({others[0].reason})",
                         cause=others[0].cause, **base)


def judge_read(read: ServedRead, days: float, now: float) -> ServedVerdict:
    fetched = read.fetched
    assert fetched is not None  # an unprobed read is judge_unchecked's
    where = " ".join(part for part in (read.address and f"at {read.address}",
                                       read.host and f"as {read.host}") if part)
    base: dict[str, Any] = {"latency": fetched.latency, "address": read.address, "host": read.host, "status": fetched.status,
            "expires": fetched.expires}
    if not fetched.ok:
        cause = "http" if fetched.status is not None and fetched.error is None else "unreachable"
        return ServedVerdict(read.target, False, f"{fetched.error or f'HTTP {fetched.status}'} {where}".strip(),
                             cause=cause, **base)
    if looks_like_html(fetched.body, fetched.content_type) or not parse_stamp(fetched.body, None).is_trace:
        return ServedVerdict(read.target, False, f"not a trace file {where} (a site for another name?)".strip(),
                             cause="not-trace", **base)
    reason = f"serves the stamp {where}".strip()
    if fetched.expires is not None:
        left = (fetched.expires - now) / DAY
        reason += (f"; WARNING: certificate expires in {left:.1f} days" if left < days else
                   f"; certificate valid {left:.0f} more days")
    return ServedVerdict(read.target, True, reason, **base)


CHECK = ServedCheck()
