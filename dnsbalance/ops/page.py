"""The status page as HTML, pure: (summary, region details) -> text. What needs action comes first: banners
(fail open, a prober that kept the previous health, a late health cycle, mirrors down), then the mirrors worst
first with their last hours as a strip, then one line per region (problems first) and the pools of the regions
shown. Inline CSS and SVG only: no script, no external asset."""
from __future__ import annotations

import html
import time
from collections.abc import Sequence
from urllib.parse import quote_plus

from dnsbalance import __version__
from dnsbalance.ops import cluster_section, dnssec_section
from dnsbalance.ops.history import DEFAULT_VIEW, VIEWS, geometry
from dnsbalance.ops.status_document import ArchiveRow, MirrorRow, RegionDetail, RelayRow, Span, Summary

STRIP_WIDTH = 240  # px of the up/down history strip
BAR_WIDTH = 160  # px of a 100% share bar
FOLD_MIRRORS = 30  # past this many mirrors, those with nothing to look at are folded away
LOOK = ("down", "stale", "operator down", "drained", "pending", "syncing")  # states worth a look
OPEN_ALL = 8  # up to this many regions on the page, every one is shown open
BAD = ("down", "stale", "operator down")
COLOURS = {"up": "#2e9d4a", "down": "#d2352b", "drained": "#7b4fb8", "unknown": "#d4d4d4"}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2125;
  background: #f6f7f9; }
main { max-width: 1400px; margin: 0 auto; padding: 1em 1.5em 3em; }
h1 { font-size: 1.5em; margin: .3em 0 .1em; } h1 small { color: #667; font-weight: normal; font-size: .6em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #d8dbe0; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
.meta { color: #556; margin: 0 0 1em; }
.banner { border-radius: 6px; padding: .6em 1em; margin: .5em 0; font-weight: 600; border-left: 6px solid; }
.banner.red { background: #fde8e7; border-color: #d2352b; color: #8a1510; }
.banner.orange { background: #fff3dc; border-color: #e69b00; color: #6d4800; }
.banner.green { background: #e5f5e9; border-color: #2e9d4a; color: #1c5f2e; }
.banner.purple { background: #f1ebfa; border-color: #7b4fb8; color: #3f2470; }
.banner span { font-weight: normal; }
.warnings { color: #6d4800; margin: .3em 0; }
table { border-collapse: collapse; background: #fff; margin-bottom: .8em; box-shadow: 0 1px 2px #0001; }
td, th { border-bottom: 1px solid #e4e6ea; padding: 4px 10px; text-align: left; vertical-align: middle; }
#regions td:first-child, #mirrors td:nth-child(3), #relays td:nth-child(3) { white-space: nowrap; }
th { background: #eef0f3; font-weight: 600; font-size: .92em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fff5f4; }
.badge { display: inline-block; min-width: 5.5em; text-align: center; border-radius: 3px; padding: 0 .4em;
  font-size: .85em; font-weight: 600; color: #fff; }
.s-up { background: #2e9d4a; } .s-down, .s-stale, .s-operator-down { background: #d2352b; }
.s-syncing { background: #3b7dd8; } .s-pending { background: #e69b00; } .s-drained { background: #7b4fb8; }
.s-health-off, .s-not-probed, .s-operator-up { background: #8a8f98; }
.s-drain { background: #7b4fb8; } .s-undrain, .s-reload, .s-configuration { background: #3b7dd8; }
.s-reload-refused { background: #d2352b; }
.reason { color: #444; max-width: 44em; font-size: .92em; }
.dim { color: #778; }
.bar { height: 7px; border-radius: 2px; margin: 1px 0; }
.bar.cfg { background: #3b7dd8; } .bar.obs { background: #1d2125; }
.legend span { display: inline-block; width: 12px; height: 7px; margin: 0 .3em 0 1em; border-radius: 2px; }
details { background: #fff; margin: .4em 0; padding: .3em .8em; border-radius: 6px; box-shadow: 0 1px 2px #0001; }
details > summary { cursor: pointer; font-weight: 600; }
details table { box-shadow: none; }
a { color: #1f5fb8; }
.views a, .views strong { margin-left: .6em; } .views { font-weight: normal; font-size: .8em; }
svg.strip { vertical-align: middle; background: #eceef1; }
"""


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        hours, minutes = divmod(round(seconds / 60), 60)  # 1 h 59.6 min reads 2 h 0 min, never 1 h 60 min
        return f"{hours} h {minutes} min"
    return f"{seconds / 86400:.0f} d"


def clock(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if 0 < value < 0.01 else f"{100 * value:.1f}%"


def badge(state: str) -> str:
    return f"<span class='badge s-{state.replace(' ', '-')}'>{html.escape(state)}</span>"


def _moment(moment: float, length: float) -> str:
    """A strip's times to the second where a view is short enough for seconds to matter."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC" if length <= 86400 else "%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def strip(spans: list[Span], start: float, length: float) -> str:
    """The history of one key as an inline SVG strip, oldest left: every down or drained stretch drawn at least
    two pixels wide, over the rest (ops/history.py geometry), so a 30 s outage shows in a 6 h strip."""
    rects = []
    for x, width, (begin, end, state) in geometry(spans, start, length, STRIP_WIDTH):
        rects.append(f"<rect x='{x:.2f}' y='0' width='{width:.2f}' height='14' fill='{COLOURS[state]}' "
                     f"data-state='{state}'><title>{state} {_moment(begin, length)} to {_moment(end, length)} "
                     f"({ago(end - begin)})</title></rect>")
    return (f"<svg class='strip' width='{STRIP_WIDTH}' height='14' role='img' aria-label='up/down history' "
            "shape-rendering='crispEdges'>"
            f"{''.join(rects)}</svg>")


def _since(row: MirrorRow | RelayRow | ArchiveRow, now: float) -> str:
    since = row["since"]
    if (row["state"] in BAD or row["state"] in ("syncing", "drained")) and since:
        return f"{row['state'].split()[-1]} since {clock(since)}<br><span class='dim'>{ago(now - since)}</span>"
    if row["state"] == "up" and since:
        return f"<span class='dim'>up for {ago(now - since)}</span>"
    return "<span class='dim'>-</span>"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _target_rows(rows: Sequence[MirrorRow | RelayRow], status: Summary, relays: bool = False) -> str:
    e = html.escape
    now, length = status["now"], status["health"]["history_seconds"]
    out = []
    for row in rows:
        name = f"{row['name']}/{row['service']}" if "service" in row else row["name"]  # relays: per service
        reason = row.get("last_error") or row.get("reason") or ""
        cells = [badge(row["state"]), f"<strong>{e(name)}</strong>", _since(row, now),
                 strip(row["history"], now - length, length), f"<span class='num'>{_ms(row['last_latency'])}</span>"]
        if not relays:
            cells.append("-" if row["lag"] is None else ago(row["lag"]))
        cells.append(f"<span class='reason'>{e(reason)}</span>")
        bad = " class='bad'" if row["state"] in BAD else ""
        out.append(f"<tr{bad} data-state='{e(row['state'])}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        archives = row["archives"] if "archives" in row else []  # noqa: SIM401 (mypy tells rows apart by `in`)
        if len(archives) > 1:  # one line per archive under the mirror's own
            for a in archives:
                cells = [badge(a["state"]), f"<span class='dim'>&nbsp;&nbsp;{e(a['archive'])}</span>",
                         _since(a, now), strip(a["history"], now - length, length), _ms(a["latency"]),
                         "-" if a["lag"] is None else ago(a["lag"]),
                         f"<span class='reason'>{e(a['reason'] or '')}</span>"]
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(out)


def _bad_name(row: MirrorRow | RelayRow, now: float) -> str:
    name = f"{row['name']}/{row['service']}" if "service" in row else row["name"]
    since = row["since"]
    return html.escape(name) + (f" ({row['state']} {ago(now - since)})" if since else f" ({row['state']})")


def _drained_name(row: MirrorRow | RelayRow) -> str:
    drain = row["drain"]
    name = f"{row['name']}/{row['service']}" if "service" in row else row["name"]
    if drain is None:
        return html.escape(name)
    why = f": {drain['reason']}" if drain["reason"] else ""
    until = f", until {clock(drain['until'])}" if drain["until"] is not None else ""
    return html.escape(f"{name} (by {drain['by']}{why}{until})")


def banners(status: Summary) -> str:
    e = html.escape
    out = []
    conf = status.get("configuration")
    if conf and conf.get("files_differ"):
        when = "at the next health cycle" if conf["auto_apply"] else "at `dnsbalance reload` (reload.auto_apply off)"
        out.append(f"<div class='banner orange' id='pending-config'>The configuration files in "
                   f"{e(conf['directory'])} differ from what is served; they apply {e(when)}. "
                   f"<span>`dnsbalance plan` shows what they change.</span></div>")
    if status["fail_open"]:
        out.append(f"<div class='banner red' id='fail-open'>FAIL OPEN: {e(', '.join(status['fail_open']))} "
                   f"<span>&mdash; no table has a usable mirror for these names: clients get the default table's "
                   f"configured entries, health ignored. Look at the mirrors below.</span></div>")
    cycle = status["last_cycle"]
    health = status["health"]
    if cycle and cycle["kept_previous"]:
        out.append(f"<div class='banner red'>Every probed {e(' and '.join(cycle['kept_previous']))} failed in the "
                   f"last health cycle <span>&mdash; the prober is the likely fault; the previous health is kept."
                   f"</span></div>")
    if health["enabled"] and cycle and status["now"] - cycle["started"] > 3 * health["interval"] + 30:
        out.append(f"<div class='banner orange'>No health cycle for {ago(status['now'] - cycle['started'])} "
                   f"<span>(one every {health['interval']:g} s is planned)</span></div>")
    targets: list[MirrorRow | RelayRow] = [*status["mirrors"], *status["relays"]]
    bad = [m for m in targets if m["state"] in BAD]
    if bad:
        names = ", ".join(_bad_name(m, status["now"]) for m in bad[:12])
        more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
        out.append(f"<div class='banner orange' id='down'>{len(bad)} down or stale: <span>{names}{more}</span></div>")
    drained = [m for m in targets if m["state"] == "drained" and m["drain"] is not None]
    if drained:
        names = "; ".join(_drained_name(m) for m in drained[:12])
        more = f" and {len(drained) - 12} more" if len(drained) > 12 else ""
        out.append(f"<div class='banner purple' id='drained'>{len(drained)} drained by operators: "
                   f"<span>{names}{more} &mdash; out of every answer until `dnsbalance undrain`</span></div>")
    problems = [r for r in status["regions"] if r["problem"]]
    if problems:
        fallback = sum(1 for r in problems if r["falls_back"])
        out.append(f"<div class='banner orange' id='regions-problem'>{len(problems)} region(s) lost mirrors"
                   f"{f', {fallback} fall back to a wider table for some names' if fallback else ''} "
                   f"<span>&mdash; listed first under Regions</span></div>")
    pending = status["states"].get("pending", 0)
    if pending:
        out.append(f"<div class='banner orange'>{pending} not judged yet (pending) <span>&mdash; the first health "
                   f"cycle has not finished for them</span></div>")
    out += cluster_section.banners(status)
    out += dnssec_section.banners(status)
    if not out:
        count = len(status["mirrors"]) + len(status["relays"])
        out.append(f"<div class='banner green' id='all-good'>All good: {count} mirrors and relay services usable, "
                   f"no region lost a mirror.</div>")
    return "".join(out)


def _region_link(label: str) -> str:
    return f"?region={quote_plus(label)}"


def region_table(status: Summary, detailed: set[str]) -> str:
    e = html.escape
    rows = []
    for r in status["regions"]:
        problem = []
        if r["falls_back"]:
            served = "failing open" if r["region"] == "default" else "a wider table serves"
            problem.append(f"no usable mirror for {e(', '.join(r['falls_back'][:6]))}"
                           f"{' ...' if len(r['falls_back']) > 6 else ''} ({served})")
        if r["lost"]:
            problem.append(f"lost {e(', '.join(r['lost'][:8]))}{' ...' if len(r['lost']) > 8 else ''}")
        where = f"<a href='#{e(quote_plus(r['region']))}'>below</a>" if r["region"] in detailed else \
            f"<a href='{e(_region_link(r['region']))}'>details</a>"
        rows.append(f"<tr{' class=bad' if r['problem'] else ''}><td><strong>{e(r['region'])}</strong></td>"
                    f"<td class='dim'>{e(r['selects'])}</td><td class='num'>{r['pool_count']}</td>"
                    f"<td>{'; '.join(problem) or '<span class=dim>ok</span>'}</td>"
                    f"<td class='num'>{r['recent_first_answers']}</td><td>{where}</td></tr>")
    return ("<table id='regions'><tr><th>region</th><th>clients</th><th>pools</th><th>problem</th>"
            f"<th>answers, last {status['shares']['recent_window_seconds'] // 60} min</th><th></th></tr>"
            + "".join(rows) + "</table>")


def _bars(configured: float, observed: float | None) -> str:
    out = f"<div class='bar cfg' style='width:{max(1.0, configured * BAR_WIDTH):.0f}px'></div>"
    if observed is not None:
        out += f"<div class='bar obs' style='width:{max(1.0, observed * BAR_WIDTH):.0f}px'></div>"
    return out


def region_block(region: RegionDetail, status: Summary, open_: bool) -> str:
    e = html.escape
    now = status["now"]
    window = status["shares"]["recent_window_seconds"] // 60
    parts = []
    lost_count = 0
    # what needs a look first: names with nothing usable, then those that lost an entry
    for pool in sorted(region["pools"], key=lambda p: (not p["fail_open"], not any(x["state"] in BAD
                                                                                   for x in p["lost"]))):
        head = f"{e(pool['name'])} {pool['type']}"
        if pool["fail_open"] and region["region"] == "default":
            parts.append(f"<h3>{head} <span class='badge s-down'>fail open</span></h3>"
                         f"<p class='dim'>No table has a usable entry: every client of this name gets these "
                         f"configured entries, health ignored.</p>")
        elif pool["fail_open"]:
            parts.append(f"<h3>{head} <span class='badge s-down'>no usable mirror</span></h3>"
                         f"<p class='dim'>Every configured entry is unusable: these clients are served by a wider "
                         f"table.</p>")
        else:
            parts.append(f"<h3>{head}</h3><p class='dim'>{pool['recent_first_answers']} answers in the last {window} "
                         f"min, {pool['first_answers']} since the counters' reset. <span class='legend'>"
                         f"<span style='background:#3b7dd8'></span>configured share (healthy entries)"
                         f"<span style='background:#1d2125'></span>observed share of first answers, last {window} "
                         f"min</span></p>")
        rows = []
        for x in pool["entries"]:
            rows.append(f"<tr><td>{badge(x['state'])}</td><td><strong>{e(x['target'])}</strong></td>"
                        f"<td class='num'>{x['weight']}</td>"
                        f"<td>{_bars(x['configured_share'], x['recent_observed_share'])}</td>"
                        f"<td class='num'>{_pct(x['configured_share'])}</td>"
                        f"<td class='num'>{_pct(x['delivered_share'])}</td>"
                        f"<td class='num'>{_pct(x['recent_observed_share'])}</td><td></td></tr>")
        for lost in pool["lost"]:
            lost_count += lost["state"] in BAD
            when = lost["since"]
            since = f"since {clock(when)} ({ago(now - when)})" if when else ""
            rows.append(f"<tr class='{'bad' if lost['state'] in BAD else ''}'><td>{badge(lost['state'])}</td>"
                        f"<td>{e(lost['target'])}</td><td class='num dim'>-</td><td></td><td class='num dim'>-</td>"
                        f"<td class='num dim'>-</td><td></td><td class='reason'>{e(since)} {e(lost['reason'])}</td>"
                        "</tr>")
        if rows:
            parts.append("<table><tr><th></th><th>entry</th><th>weight</th><th>share</th><th>configured</th>"
                         "<th>delivered</th>"
                         "<th>observed</th><th>why not served</th></tr>" + "".join(rows) + "</table>")
    note = f" &mdash; lost {lost_count}" if lost_count else ""
    return (f"<details id='{e(quote_plus(region['region']))}'{' open' if open_ else ''}><summary>"
            f"{e(region['region'])} <span class='dim'>({e(region['selects'])}; {len(region['pools'])} "
            f"pool{'s' if len(region['pools']) != 1 else ''}{note})</span></summary>{''.join(parts)}</details>")


def _head(status: Summary, title: str) -> str:
    e = html.escape
    cycle = status["last_cycle"]
    health = status["health"]
    if not health["enabled"]:
        checks = "health checks are off: every configured entry counts as usable"
    elif cycle is None:
        checks = "no health cycle finished yet"
    else:
        checks = (f"last health cycle {ago(status['now'] - cycle['started'])} ago, took {cycle['duration']:.2f} s "
                  f"({e(cycle['master'])}); every {health['interval']:g} s")
    q = status["queries"]
    warned = "".join(f"<li>{e(w)}</li>" for w in cycle["warnings"]) if cycle is not None else ""
    warnings = f"<ul class='warnings' id='warnings'>{warned}</ul>" if warned else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>dnsbalance: {e(status['zone'])} <small>{__version__}</small></h1>
{_instance(status)}<p class="meta" id="summary">Table generation {status['generation']}, built {ago(status['table_age_seconds'])} ago;
{checks}.<br>{q['total']} queries, {_pct(q['no_country_share'])} with no country, {q['ecs']} located by client
subnet, about {q['unique_clients']} distinct clients. As of {clock(status['now'])}.</p>
{warnings}"""


def _instance(status: Summary) -> str:
    """Which server this page belongs to: several instances on one host share a default status port."""
    found = status.get("instance")
    if found is None:
        return ""
    e = html.escape
    name = f"instance <b>{e(found['name'])}</b>, " if found["name"] else ""
    return (f"<p class=\"meta\" id=\"instance\">{name}pid {found['pid']}, configuration <code>{e(found['config'])}"
            f"</code>, DNS on {e(', '.join(found['listen']))}, state in <code>{e(found['state_dir'])}</code>.</p>\n")


def views(status: Summary) -> str:
    """Links to the strips' views (6 h, 24 h, 7 d), the one shown in bold."""
    shown = status["health"]["history_seconds"]
    out = []
    for name, seconds in VIEWS.items():
        label = name.replace("h", " h").replace("d", " d")
        out.append(f"<strong>{label}</strong>" if seconds == shown else
                   f"<a href='{'?' if name == DEFAULT_VIEW else '?history=' + name}'>{label}</a>")
    return f"<span class='views' id='views'>history: {''.join(out)}</span>"


def _window(seconds: float) -> str:
    return f"{seconds / 86400:g} d" if seconds >= 2 * 86400 else f"{seconds / 3600:g} h"


def _targets(status: Summary) -> str:
    e = html.escape
    window = _window(status["health"]["history_seconds"])
    head = (f"<tr><th>state</th><th>mirror</th><th>since</th><th>last {window}</th><th>probe</th><th>lag</th>"
            f"<th>reason</th></tr>")
    mirrors = status["mirrors"]
    if len(mirrors) <= FOLD_MIRRORS:
        out = f"<h2>Mirrors {views(status)}</h2><table id='mirrors'>{head}{_target_rows(mirrors, status)}</table>"
    else:  # a big fleet: those needing a look open, the rest one click away
        look = [m for m in mirrors if m["state"] in LOOK]
        rest = [m for m in mirrors if m["state"] not in LOOK]
        words = ", ".join(f"{n} {s}" for s, n in sorted(status["states"].items()) if s not in LOOK)
        out = (f"<h2>Mirrors ({len(mirrors)}) {views(status)}</h2><table id='mirrors'>{head}"
               f"{_target_rows(look, status)}</table>"
               f"<details id='other-mirrors'><summary>{len(rest)} more: {e(words)}</summary>"
               f"<table>{head}{_target_rows(rest, status)}</table></details>")
    if status["relays"]:
        out += ("<h2>Relays</h2><table id='relays'><tr><th>state</th><th>relay service</th><th>since</th>"
                f"<th>last {window}</th><th>probe</th><th>reason</th></tr>"
                + _target_rows(status["relays"], status, relays=True) + "</table>")
    return out


def operations(status: Summary) -> str:
    """The operators' latest actions (drains, undrains, reloads, configurations), newest first."""
    rows = status.get("operations") or []
    if not rows:
        return ""
    e = html.escape
    out = []
    for row in rows:
        what = row["kind"] if row["kind"] != "reload" or row["ok"] else "reload refused"
        who = e(row["by"]) if row["by"] else "<span class='dim'>-</span>"
        out.append(f"<tr><td class='dim'>{e(clock(row['time']))}</td><td>{badge(what)}</td>"
                   f"<td><strong>{e(row['key'])}</strong></td><td>{who}</td>"
                   f"<td class='reason'>{e(row['reason'])}</td></tr>")
    return (f"<h2>Operators' actions <span class='views'>last {_window(status['health']['history_seconds'])}, "
            f"newest first (`dnsbalance events` has them all)</span></h2><table id='operations'><tr><th>when</th>"
            f"<th>what</th><th>on</th><th>by</th><th>detail</th></tr>{''.join(out)}</table>")


def render_page(status: Summary, details: list[RegionDetail]) -> str:
    """The main page: banners, mirrors, relays, regions; the pools of the regions in `details`."""
    shown = {d["region"] for d in details}
    problems = {r["region"] for r in status["regions"] if r["problem"]}
    few = len(details) <= OPEN_ALL  # a small table is read whole; of a big one, the regions with a problem
    blocks = "".join(region_block(d, status, few or d["region"] in problems) for d in details)
    hidden = len(status["regions"]) - len(details)
    more = (f"<p class='dim'>{hidden} more regions: follow <em>details</em> in the table above "
            f"(or ask <code>/status.json?region=LABEL</code>).</p>" if hidden > 0 else "")
    return (_head(status, f"dnsbalance: {status['zone']}") + banners(status) + _targets(status)
            + cluster_section.section(status) + dnssec_section.section(status) + operations(status)
            + f"<h2>Regions ({len(status['regions'])})</h2>" + region_table(status, shown)
            + (f"<h2>Pools</h2>{blocks}" if blocks else "") + more + "</main></body></html>\n")


def render_region(status: Summary, region: RegionDetail) -> str:
    """One region's page (`/?region=LABEL`)."""
    return (_head(status, f"dnsbalance: {region['region']}") + banners({**status, "regions": []})
            + "<p><a href='/'>&larr; all regions</a></p>" + region_block(region, status, True)
            + "</main></body></html>\n")
