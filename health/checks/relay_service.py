"""Relay services (STUN, TURN over UDP, TCP, TLS): one target per address of each service, a real STUN Binding
each (health/relay_probe.py). A service is usable only when every address it is served at answers."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dnsbalance.configuration.model import Config, health_key
from dnsbalance.protocol.addresses import host_port
from dnsbalance.health.checks.base import Judged, Probing, Target
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.relay_probe import RelayCheck, check
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.verdict import RelayVerdict, Verdict

NAME = "relay-service"


@dataclass(frozen=True)
class RelayTarget(Target):
    service_key: str  # key: `tokyo1/stun@203.0.113.10`; this: `tokyo1/stun`
    service: str
    address: str
    port: int


@dataclass(frozen=True)
class RelayAnswer(Observation):
    service_key: str
    check: RelayCheck


class RelayService:
    name = NAME

    def targets(self, config: Config) -> Sequence[RelayTarget]:
        return [RelayTarget(f"{key}@{address}", key, service, address, relay.port(service) or 0)
                for relay in config.relays.values() for service in relay.services()
                if (key := health_key(relay.name, service)) for address in relay.ipv4 + relay.ipv6]

    async def observe(self, target: RelayTarget, probing: Probing) -> Observation:
        return RelayAnswer(target.key, target.service_key,
                           await check(target.address, target.port, target.service, probing.timeout,
                                       probing.source))

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        grouped: dict[str, list[RelayCheck]] = {}
        for answer in observed.of(NAME).values():
            if isinstance(answer, RelayAnswer):
                grouped.setdefault(answer.service_key, []).append(answer.check)
        verdicts: list[Verdict] = []
        for key, results in grouped.items():
            bad = [r for r in results if not r.ok]
            shown = bad[0] if bad else results[0]
            where = host_port(shown.address, shown.port)
            verdicts.append(RelayVerdict(key, not bad, f"{where} {shown.detail}",
                                         latency=max(r.latency for r in results), addresses=len(results)))
        return Judged(tuple(verdicts))


CHECK = RelayService()
