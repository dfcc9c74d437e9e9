"""`dnsbalance probe` with `cluster:`: what each live vantage point sees, this probe's own view, and the consensus the
name servers serve, as text lines or (`--json`) one object. Reading etcd is bounded and read-only (a probe never
votes); the table and the object are pure.
"""
from __future__ import annotations

from collections.abc import Mapping

from dnsbalance.cluster.consensus import decide
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.cluster.member import Read, observed, read_prefix
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.health.verdict import Verdict


def read_cluster(settings: ClusterSettings, timeout: float = 2.0) -> Read | str:
    """The live votes under the prefix, or why they could not be read (never a credential)."""
    link = EtcdLink(settings, timeout)
    try:
        return read_prefix(link.get_prefix(settings.prefix), settings.prefix, settings.instances)
    except EtcdDown as exc:
        return str(exc)
    finally:
        link.close()


def cluster_table(read: Read | str, settings: ClusterSettings, verdicts: tuple[Verdict, ...],
                  known: Mapping[str, str]) -> list[str]:
    """Per target of this configuration: each live instance's last vote, this probe's verdict, the consensus."""
    head = f"cluster: {len(settings.etcd)} etcd endpoint(s), prefix {settings.prefix}, " \
           f"down_quorum {settings.down_quorum}, this host is {settings.instance}"
    if isinstance(read, str):
        return [head, f"etcd unreachable ({read}): no cluster view; a running server serves its own verdicts"]
    names = sorted(v.instance for v in read.votes)
    lines = [head, f"live instances: {', '.join(names) or 'none'}"]
    digests = {v.digest for v in read.votes}
    if len(digests) > 1:
        lines.append("configurations differ between name servers: " + "; ".join(
            f"{d}: {', '.join(sorted(v.instance for v in read.votes if v.digest == d))}" for d in sorted(digests)))
    if read.unknown:
        lines.append(f"unknown writers (not in cluster.instances, ignored): {', '.join(read.unknown)}")
    if read.ignored:
        lines.append(f"{len(read.ignored)} value(s) under the prefix ignored: {'; '.join(read.ignored)[:300]}")
    decisions = decide(read.votes, settings.down_quorum)
    here = {v.name: v.ok for v in observed(verdicts)}
    by_name = {v.instance: v for v in read.votes}
    rows = [("target", *names, "this probe", "consensus")]
    for key in [v.name for v in verdicts if v.name in known]:
        seen = [_word(by_name[n].sees(key)) for n in names]
        decision = decisions.get(key)
        verdict = "-" if decision is None else \
            f"{'up' if decision.up else 'DOWN'} ({len(decision.down)}/{decision.voters} down, {decision.needed} needed)"
        rows.append((key, *seen, _word(here.get(key)), verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    if len(here) < len(verdicts):
        lines.append("this probe failed every target of a kind: the prober is the likely fault, and its vote would "
                     "leave them out")
    return lines


def cluster_json(read: Read | str, settings: ClusterSettings, verdicts: tuple[Verdict, ...],
                 known: Mapping[str, str]) -> dict[str, object]:
    """What cluster_table says, for `probe --json`: shaped as status.json's `cluster` (targets' `up`, `down_votes`,
    `voters`, `needed`, `seen`), plus this probe's own view of each target (`this_probe`, null when it left it out
    of what a vote would say)."""
    head: dict[str, object] = {"instance": settings.instance, "prefix": settings.prefix,
                               "down_quorum": settings.down_quorum, "etcd_endpoints": len(settings.etcd)}
    if isinstance(read, str):
        return {**head, "connected": False, "problem": read}
    decisions = decide(read.votes, settings.down_quorum)
    here = {v.name: v.ok for v in observed(verdicts)}
    configurations: dict[str, list[str]] = {}
    for vote in sorted(read.votes, key=lambda v: v.instance):
        configurations.setdefault(vote.digest, []).append(vote.instance)
    targets: dict[str, object] = {}
    for key in [v.name for v in verdicts if v.name in known]:
        decision = decisions.get(key)
        targets[key] = {"seen": {v.instance: v.sees(key) for v in sorted(read.votes, key=lambda v: v.instance)},
                        "this_probe": here.get(key),
                        **({"up": None} if decision is None else
                           {"up": decision.up, "down_votes": list(decision.down), "voters": decision.voters,
                            "needed": decision.needed})}
    return {**head, "connected": True, "problem": "", "live": sorted(v.instance for v in read.votes),
            "configurations": configurations, "drift": len(configurations) > 1,
            "unknown_writers": list(read.unknown), "ignored": list(read.ignored),
            "prober_suspected": len(here) < len(verdicts), "targets": targets}


def _word(up: bool | None) -> str:
    return "-" if up is None else "up" if up else "down"
