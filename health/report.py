"""A cycle as a table of text, for `dnsbalance probe`."""
from __future__ import annotations

from health.cycle import CycleReport


def probe_table(report: CycleReport) -> list[str]:
    rows = [("mirror", "http", "latency", "stamp", "lag", "verdict", "reason")]
    for v in report.verdicts:
        rows.append((
            v.name,
            str(v.status) if v.status is not None else "-",
            f"{v.latency * 1000:.0f}ms" if v.latency is not None else "-",
            v.stamp.describe() if v.stamp else "-",
            f"{v.lag:.0f}s" if v.lag is not None else "-",
            "ok" if v.ok else "FAIL",
            v.reason,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    good = sum(v.ok for v in report.verdicts)
    lines.append(f"{good} of {len(report.verdicts)} mirrors usable; {report.master_note}; "
                 f"cycle took {report.duration:.2f}s")
    if report.all_failed:
        lines.append("every mirror failed: a running server keeps its previous table (the prober is the likely fault)")
    return lines
