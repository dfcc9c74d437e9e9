"""A cycle as a table of text, for `dnsbalance probe`."""
from __future__ import annotations

from collections.abc import Mapping

from dnsbalance.configuration.model import AdminState, Config
from dnsbalance.drains import Drain
from dnsbalance.health.checks.served import ServedVerdict
from dnsbalance.health.cycle import CycleReport
from dnsbalance.health.verdict import StampVerdict, TargetKind, Verdict


def operator_state(config: Config | None, verdict: Verdict) -> AdminState:
    """The override in mirrors.yaml of the mirror or relay a verdict judges (`jaist/debian`, `tokyo1/stun`)."""
    if config is None:
        return AdminState.AUTO
    name = verdict.name.split("/", 1)[0]
    target = (config.mirrors if verdict.kind is TargetKind.MIRROR else config.relays).get(name)
    return target.state if target is not None else AdminState.AUTO


def probe_rows(report: CycleReport, config: Config | None = None,
               drains: Mapping[str, Drain] | None = None) -> list[dict[str, object]]:
    """Every verdict of the cycle as `probe --json` gives it (`drained`: the operator's drain, or null)."""
    rows: list[dict[str, object]] = []
    for v in report.verdicts:
        state = operator_state(config, v)
        drain = (drains or {}).get(v.name.split("/", 1)[0])
        stamped = v if isinstance(v, StampVerdict) else None
        rows.append({"name": v.name, "kind": v.kind.value, "ok": v.ok, "syncing": v.syncing, "reason": v.reason,
                     "operator": state.value, "latency": v.latency, "lag": v.lag,
                     "http": v.status if isinstance(v, StampVerdict | ServedVerdict) else None,
                     "stamp": stamped.stamp.describe() if stamped is not None and stamped.stamp else None,
                     "drained": drain.describe() if drain is not None else None})
    return rows


def probe_table(report: CycleReport, config: Config | None = None,
                drains: Mapping[str, Drain] | None = None) -> list[str]:
    """`config`: for the operators' `state: up|down`, which win over the verdicts as they do in the table;
    `drains`: the operators' drains in force (`dnsbalance drain`), which win over both."""
    rows = [("name", "http", "latency", "stamp", "lag", "verdict", "reason")]
    usable: dict[str, bool] = {}
    for v in report.verdicts:
        state = operator_state(config, v)
        verdict, reason = ("syncing" if v.syncing else "ok") if v.ok else "FAIL", v.reason
        drain = (drains or {}).get(v.name.split("/", 1)[0])
        if drain is not None:
            verdict, reason = "drained", f"{reason}; not served: {drain.describe()}"
            state = AdminState.DOWN
        elif state is AdminState.DOWN:
            verdict, reason = "drained", f"{reason}; not served: state: down in mirrors.yaml"
        elif state is AdminState.UP and not v.ok:
            reason = f"{reason}; served anyway: state: up in mirrors.yaml"
        usable[v.name] = state is AdminState.UP or (v.ok and state is AdminState.AUTO)
        stamped = v if isinstance(v, StampVerdict) else None
        status = v.status if isinstance(v, StampVerdict | ServedVerdict) else None
        rows.append((
            v.name,
            str(status) if status is not None else "-",
            f"{v.latency * 1000:.0f}ms" if v.latency is not None else "-",
            stamped.stamp.describe() if stamped is not None and stamped.stamp else "-",
            f"{v.lag:.0f}s" if v.lag is not None else "-",
            verdict,
            reason,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    # a mirror (per archive) is its stamp verdict; each address and name it is served at is counted apart
    mirrors = [v for v in report.verdicts if isinstance(v, StampVerdict)]
    served = [v for v in report.verdicts if isinstance(v, ServedVerdict)]
    relays = [v for v in report.verdicts if v.kind is TargetKind.RELAY]
    summary = f"{sum(usable[v.name] for v in mirrors)} of {len(mirrors)} mirrors usable"
    if served:
        summary += f", {sum(usable[v.name] for v in served)} of {len(served)} served addresses"
    if relays:
        summary += f", {sum(usable[v.name] for v in relays)} of {len(relays)} relay services usable"
    said = "; ".join(note for note in report.notes if note not in report.warnings) if report.notes else \
        report.master_note
    lines.append("; ".join(part for part in (summary, said, f"cycle took {report.duration:.2f}s") if part))
    lines += report.warnings  # each on a line of its own: they ask the operator to act
    for seen in report.external:
        lines.append(f"from outside the prober: {seen.target} {seen.describe()}")
    for kind in TargetKind:
        if report.all_failed(kind):
            lines.append(f"every {kind.value} failed: {report.likely_cause(kind)}; a running server keeps their "
                         "previous health")
    return lines
