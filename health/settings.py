"""What the health policy is told about the configuration: thresholds, archives and the targets that exist.
A value built once per cycle from the configuration, so the policy itself never reads a Config."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dnsbalance.configuration.model import Archive, Config, archives_of, fallback_archive, health_key, mirror_key
from dnsbalance.health.requirements import requirement_keys
from dnsbalance.health.served import served_targets


@dataclass(frozen=True)
class Thresholds:
    """gdnsd's anti-flap counts: failed cycles before an up target is taken out, good ones before it returns."""

    fall: int = 1
    rise: int = 1


@dataclass(frozen=True)
class PolicySettings:
    thresholds: Thresholds = Thresholds()
    per_target: Mapping[str, Thresholds] = field(default_factory=lambda: MappingProxyType({}))  # overrides by key
    archives: tuple[Archive, ...] = ()
    # every health key the configuration has, and the mirror or relay each belongs to; state for any other key
    # is dropped, and an outside observation naming one is reported as unknown
    known: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    certificate_days: float = 14.0  # a served certificate expiring sooner is a warning

    def of(self, key: str) -> Thresholds:
        return self.per_target.get(key, self.thresholds)


def _owners(config: Config) -> dict[str, str]:
    """Every key a cycle may judge, (mirror, archive) pairs and relay services, and the mirror or relay of each."""
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    owners = {mirror_key(m.name, a): m.name for a in archives for m in config.mirrors.values()
              if m.probed() and m.url_for(a, fallback)}
    owners.update({health_key(r.name, s): r.name for r in config.relays.values() for s in r.services()})
    owners.update({served.key: owners.get(served.owner, served.owner) for served in served_targets(config)})
    owners.update(requirement_keys(config))
    return owners


def policy_settings(config: Config) -> PolicySettings:
    health = config.settings.health
    return PolicySettings(Thresholds(health.fall, health.rise), MappingProxyType({}), archives_of(config.settings),
                          MappingProxyType(_owners(config)), health.certificate_days)
