"""The active table as text, written to the state folder after each cycle (as DNS Balance wrote `addr`)."""
from __future__ import annotations

from datetime import datetime, timezone

from dnsbalance.ranking.active import ActiveTable, Tier


def _tier_lines(label: str, tier: Tier) -> list[str]:
    lines = []
    for (name, rtype), pool in sorted({**tier.usable, **tier.fail_open}.items()):
        mark = "  FAIL OPEN (nothing usable: configured entries served)" if pool.fail_open else ""
        lines.append(f"{label}\t{name}\t{rtype.name}{mark}")
        total = sum(pool.weights)
        for candidate in pool.candidates:
            share = 100.0 * candidate.weight / total if total else 0.0
            lines.append(f"\t{candidate.name}\tweight {candidate.weight}\t{share:.1f}%\t"
                         f"{' '.join(candidate.addresses)}")
    return lines


def render(table: ActiveTable, generated_at: float) -> str:
    when = datetime.fromtimestamp(generated_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"# dnsbalance active table, generation {table.generation}, {when}, zone {table.zone.zone}",
             "# region  owner  type / then per usable entry: mirror  weight  share of first answers  addresses"]
    for label, tier in table.labelled_tiers():
        lines += _tier_lines(label.replace(" ", ":"), tier)  # "country:JP": one field per tab
    return "\n".join(lines) + "\n"
