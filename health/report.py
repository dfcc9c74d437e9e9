"""A cycle as a table of text, for `dnsbalance probe`."""
from __future__ import annotations

from health.cycle import CycleReport
from health.verdict import TargetKind


def probe_table(report: CycleReport) -> list[str]:
    rows = [("name", "http", "latency", "stamp", "lag", "verdict", "reason")]
    for v in report.verdicts:
        rows.append((
            v.name,
            str(v.status) if v.status is not None else "-",
            f"{v.latency * 1000:.0f}ms" if v.latency is not None else "-",
            v.stamp.describe() if v.stamp else "-",
            f"{v.lag:.0f}s" if v.lag is not None else "-",
            ("syncing" if v.syncing else "ok") if v.ok else "FAIL",
            v.reason,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    mirrors = [v for v in report.verdicts if v.kind is TargetKind.MIRROR]
    relays = [v for v in report.verdicts if v.kind is TargetKind.RELAY]
    summary = f"{sum(v.ok for v in mirrors)} of {len(mirrors)} mirrors usable"
    if relays:
        summary += f", {sum(v.ok for v in relays)} of {len(relays)} relay services usable"
    lines.append(f"{summary}; {report.master_note}; cycle took {report.duration:.2f}s")
    for kind in TargetKind:
        if report.all_failed(kind):
            lines.append(f"every {kind.value} failed: {report.likely_cause(kind)}; a running server keeps their "
                         "previous health")
    return lines
