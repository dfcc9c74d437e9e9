"""Weights as traffic at the clients, as lines of text for `check` and `explain`: the answer-set
distribution of a pool, and the shares a minimum number of addresses bends (pure)."""
from __future__ import annotations

from fractions import Fraction

from dnsbalance.configuration.model import Config
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import Pool
from dnsbalance.ranking.answersets import Delivered, Design, delivered_shares, design
from dnsbalance.ranking.build import build_table
from dnsbalance.health.view import ALL_USABLE

SHOWN_SETS = 12  # explain lists the likeliest sets; a big pool has up to (mirrors x sizes) of them


def percent(share: Fraction | float) -> str:
    value = 100 * float(share)
    return f"{value:.2f}%" if 0 < value < 1 else f"{value:.1f}%"  # a last resort's 0.4% is not 0


def bent(pool: Pool, result: Design | Delivered) -> str | None:
    """'jp4: configured 5.3%, delivered 6.2%, ...' for the mirrors the minimum moves, None if none."""
    if result.exact:
        return None
    moved = [f"{c.name}: configured {percent(configured)}, delivered {percent(delivered)}"
             for c, configured, delivered in zip(pool.candidates, result.configured, result.delivered)
             if configured != delivered]
    return "; ".join(moved)


def design_lines(pool: Pool, result: Design) -> list[str]:
    """The answer-set distribution: sizes, expected size, the likeliest sets; and what the minimum bends."""
    sizes = ", ".join(f"{k} address{'es' if k > 1 else ''} {percent(p)}" for k, p in result.sizes.items())
    lines = [(f"  answer sets (order shuffled within each): expected size {float(result.expected_size):.2f}; "
              f"{sizes}")]
    for members, probability in result.sets[:SHOWN_SETS]:
        lines.append(f"    {percent(probability):>6}  {' '.join(pool.candidates[i].name for i in members)}")
    if len(result.sets) > SHOWN_SETS:
        rest = sum((p for _, p in result.sets[SHOWN_SETS:]), Fraction(0))
        lines.append(f"    {percent(rest):>6}  ({len(result.sets) - SHOWN_SETS} more sets)")
    moved = bent(pool, result)
    if moved:
        lines.append(f"  with at least {result.minimum} addresses per answer the configured shares cannot hold: "
                     f"{moved}")
    return lines


def bent_shares(config: Config) -> list[str]:
    """Per region and name, the shares clients will actually see where `min_answers` makes the configured
    ones impossible (configured entries, everything usable)."""
    settings = config.settings
    if settings.min_answers <= 1:  # one address may carry any share: nothing is bent, no table to build
        return []
    table = build_table(config, ALL_USABLE, 0, 0)
    lines = []
    for label, tier in table.labelled_tiers():
        for (name, rtype), pool in sorted(tier.usable.items()):
            if rtype not in (RType.A, RType.AAAA):
                continue
            result = delivered_shares(pool.weights, settings.answers, settings.min_answers)  # not the sets
            moved = bent(pool, result)
            if moved:
                lines.append(f"{label}: {name} {rtype.name}: delivered with at least {result.minimum} addresses "
                             f"per answer: {moved}")
    return lines


MOSTLY = Fraction(1, 2)  # a pool whose answers carry one address more often than this is told


def single_address(config: Config) -> list[str]:
    """Per region and name, pools whose A/AAAA answers mostly carry one address (skewed weights: the heavy
    mirror's share can only be delivered alone), so a resolver caching one of them leaves its clients with no
    fallback for a TTL when that mirror dies; with what `min_answers: 2` would cost in shares. SRV answers
    (`_http._tcp`) are apt's own fallback between targets; these lines are about the address answers."""
    settings = config.settings
    if settings.min_answers >= 2:
        return []
    table = build_table(config, ALL_USABLE, 0, 0)
    lines = []
    for label, tier in table.labelled_tiers():
        for (name, rtype), pool in sorted(tier.usable.items()):
            if rtype not in (RType.A, RType.AAAA) or len(pool.candidates) < 2:
                continue
            single = design(pool.weights, settings.answers, 1).sizes.get(1, Fraction(0))
            if single <= MOSTLY:
                continue
            cost = bent(pool, design(pool.weights, settings.answers, 2)) or "no share moves"
            lines.append(f"{label}: {name} {rtype.name}: {percent(single)} of answers carry a single address (no "
                         f"fallback at the client for a TTL if it dies); min_answers: 2 would deliver {cost}")
    return lines
