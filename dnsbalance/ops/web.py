"""The operator's HTTP listener (127.0.0.1 by default): `/` status page, `/status.json`, `/metrics`.

A deliberately small HTTP/1.1 server on the event loop: GET only, one request per connection, no
external assets, bounded request size and time.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dnsbalance import __version__

if TYPE_CHECKING:
    from dnsbalance.serving.balancer import Balancer

log = logging.getLogger(__name__)
StatusSource = Callable[[], dict[str, Any]]
REQUEST_LIMIT = 8192
REQUEST_TIMEOUT = 5.0


class StatusCollector:
    """Prometheus metrics, made from the status dict and the query totals at scrape time."""

    def __init__(self, source: StatusSource, totals: Callable[[], Any]) -> None:
        self.source = source
        self.totals = totals

    def collect(self) -> Iterator[Any]:
        status = self.source()
        totals = self.totals()
        queries = CounterMetricFamily("dnsbalance_queries", "Queries answered",
                                      labels=["type", "rcode", "country", "continent"])
        for (qtype, rcode, country, continent), count in sorted(totals.queries.items()):
            queries.add_metric([qtype, rcode, country or "none", continent or "none"], count)
        yield queries
        yield CounterMetricFamily("dnsbalance_ecs_queries", "Queries located by their EDNS Client Subnet",
                                  value=totals.ecs)
        answers = CounterMetricFamily("dnsbalance_answers", "Times a mirror or relay was in an answer",
                                      labels=["region", "name", "type", "target"])
        first = CounterMetricFamily("dnsbalance_first_answers", "Times a mirror or relay was first in an answer",
                                    labels=["region", "name", "type", "target"])
        for family, counter in ((answers, totals.answers), (first, totals.first)):
            for key, count in sorted(counter.items()):
                family.add_metric(list(key), count)
            yield family
        recent = GaugeMetricFamily("dnsbalance_recent_first_answers",
                                   "Times a mirror or relay was first in an answer, last 15 minutes",
                                   labels=["region", "name", "type", "target"])
        for key, count in sorted(totals.recent_first(time.time()).items()):
            recent.add_metric(list(key), count)
        yield recent
        yield GaugeMetricFamily("dnsbalance_unique_clients", "Distinct client subnets or resolvers (estimate)",
                                value=status["queries"]["unique_clients"])
        up = GaugeMetricFamily("dnsbalance_target_up", "1 when a mirror (or relay service) is usable",
                               labels=["target", "kind"])
        latency = GaugeMetricFamily("dnsbalance_probe_latency_seconds", "Latency of the last probe",
                                    labels=["target"])
        lag = GaugeMetricFamily("dnsbalance_mirror_lag_seconds", "Stamp lag behind the master", labels=["target"])
        for mirror in status["mirrors"]:
            up.add_metric([mirror["name"], "mirror"], 1 if mirror["usable"] else 0)
            if mirror["last_latency"] is not None:
                latency.add_metric([mirror["name"]], mirror["last_latency"])
            if mirror["lag"] is not None:
                lag.add_metric([mirror["name"]], mirror["lag"])
        for relay in status["relays"]:
            up.add_metric([f"{relay['name']}/{relay['service']}", "relay"], 1 if relay["usable"] else 0)
        yield up
        yield latency
        yield lag
        yield GaugeMetricFamily("dnsbalance_table_generation", "Generation of the table in service",
                                value=status["generation"])
        yield GaugeMetricFamily("dnsbalance_table_age_seconds", "Age of the table in service",
                                value=status["table_age_seconds"])
        fail_open = GaugeMetricFamily("dnsbalance_fail_open", "1 while a name is served with health ignored",
                                      labels=["name"])
        for name in status["fail_open"]:
            fail_open.add_metric([name], 1)
        yield fail_open
        yield GaugeMetricFamily("dnsbalance_fail_open_names", "Names served with health ignored",
                                value=len(status["fail_open"]))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _inputs(status: dict[str, Any]) -> str:
    """GeoIP in use, and whether the configuration files on disk are what is served."""
    e = html.escape
    geo, conf = status.get("geoip"), status.get("configuration")
    text = f"<p id='inputs'>GeoIP: {e(geo['path'])} ({e(geo['origin'])}).</p>" if geo else ""
    if conf and conf["files_differ"]:
        when = "at the next health cycle" if conf["auto_apply"] else "at `dnsbalance reload` (reload.auto_apply off)"
        text += (f"<p id='pending-config' class='down'>The configuration files in {e(conf['directory'])} differ from "
                 f"what is served; they apply {e(when)}. `dnsbalance plan` shows what they change.</p>")
    return text


def render_page(status: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for m in status["mirrors"]:
        state = "up" if m["usable"] else "DOWN"
        lag = "-" if m["lag"] is None else f"{m['lag']:.0f}s"
        rows.append(f"<tr class='{state.lower()}'><td>{e(m['name'])}</td><td>{state}</td>"
                    f"<td>{e(m['admin_state'])}</td><td>{e(' '.join(m['addresses']))}</td><td>{lag}</td>"
                    f"<td>{e(m['stamp'] or '-')}</td><td>{e(m['last_error'] or m['reason'] or '')}</td></tr>")
    relays = [f"<tr class='{'up' if r['usable'] else 'down'}'><td>{e(r['name'])}/{e(r['service'])}</td>"
              f"<td>{'up' if r['usable'] else 'DOWN'}</td><td>{r['port']}</td>"
              f"<td>{e(r['last_error'] or r['reason'] or '')}</td></tr>" for r in status["relays"]]
    regions = []
    for region in status["regions"]:
        for pool in region["pools"]:
            flag = " <strong class='down'>FAIL OPEN</strong>" if pool["fail_open"] else ""
            entries = "".join(
                f"<tr><td>{e(x['target'])}</td><td>{x['weight']}</td><td>{_pct(x['configured_share'])}</td>"
                f"<td>{_pct(x['delivered_share'])}</td><td>{_pct(x['recent_observed_share'])}</td>"
                f"<td>{_pct(x['observed_share'])}</td><td>{x['answers']}</td></tr>" for x in pool["entries"])
            regions.append(f"<h3>{e(region['region'])}: {e(pool['name'])} {pool['type']}{flag}</h3>"
                           f"<p>For {e(region['selects'])}; {pool['first_answers']} answers counted since the "
                           f"counters' reset, "
                           f"{pool['recent_first_answers']} in the last "
                           f"{status['shares']['recent_window_seconds'] // 60} minutes</p>"
                           f"<table><tr><th>target</th><th>weight</th>"
                           f"<th>configured share (healthy entries)</th><th>delivered at clients</th>"
                           f"<th>observed, recent</th><th>observed since reset</th><th>in answers</th></tr>"
                           f"{entries}</table>")
    q = status["queries"]
    cycle = status["last_cycle"]
    last = f"{e(cycle['master'])}, {cycle['duration']:.2f} s" if cycle else "none yet"
    fail_open = ", ".join(status["fail_open"]) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>dnsbalance: {e(status['zone'])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
tr.down td, .down {{ background: #fdd; color: #900; }}
tr.up td:nth-child(2) {{ color: #060; }}
</style></head>
<body>
<h1>dnsbalance {__version__}: {e(status['zone'])}</h1>
<p id="summary">Table generation {status['generation']}, {status['table_age_seconds']:.0f} s old.
Fail open: <span id="fail-open">{e(fail_open)}</span>.
Last health cycle: {last}.</p>
{_inputs(status)}
<p id="queries">{q['total']} queries, {_pct(q['no_country_share'])} with no country, {q['ecs']} located by client
subnet, about {q['unique_clients']} distinct clients.</p>
<h2>Mirrors</h2>
<table id="mirrors"><tr><th>mirror</th><th>health</th><th>operator</th><th>addresses</th><th>lag</th><th>stamp</th>
<th>last error / reason</th></tr>{''.join(rows)}</table>
<h2>Relays</h2>
<table id="relays"><tr><th>relay service</th><th>health</th><th>port</th><th>last error / reason</th></tr>
{''.join(relays)}</table>
<h2>Active table</h2>
{''.join(regions)}
</body></html>
"""


class StatusServer:
    def __init__(self, source: StatusSource, totals: Callable[[], Any]) -> None:
        self.source = source
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(source, totals))  # type: ignore[arg-type]
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._client, host, port, limit=REQUEST_LIMIT)
        return self.server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def route(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)
        if path == "/status.json":
            return 200, "application/json", json.dumps(self.source(), indent=1).encode()
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", render_page(self.source()).encode()
        return 404, "text/plain", b"not found\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method not in ("GET", "HEAD"):
                code, kind, body = 405, "text/plain", b"GET only\n"
            else:
                code, kind, body = self.route(path)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[code]
            writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         f"Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode())
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            pass
        except Exception:
            log.exception("status page error")
        finally:
            writer.close()



async def start_status(balancer: "Balancer", listen: str | None) -> StatusServer | None:
    """The status listener for a serving (or supervising) process; a busy port is logged, not fatal."""
    if not listen:
        return None
    from dnsbalance.configuration.names import parse_hostport
    from dnsbalance.ops.status import status
    from dnsbalance.stats.counters import all_totals

    counters = balancer.state.counters_dir
    own = balancer.stats if balancer.stats.path is not None else None

    def source() -> dict[str, Any]:
        serving = balancer.serving  # one snapshot for the whole page: its configuration and table agree
        page = status(serving.config, serving.table, balancer.health, balancer.last_cycle, totals(),
                      serving.built_at, time.time(), balancer.pools_changed)
        geoip = serving.geoip
        page["geoip"] = {"path": str(geoip.path), "type": geoip.database_type, "origin": geoip.origin,
                         "description": geoip.description}
        page["configuration"] = {"directory": str(serving.config.directory),  # edited files not yet served
                                 "files_differ": balancer.changed_on_disk(serving.config.directory),
                                 "auto_apply": serving.config.settings.reload.auto_apply}
        return page

    def totals() -> Any:
        return all_totals(counters, own)

    host, port = parse_hostport(listen)
    server = StatusServer(source, totals)
    try:
        bound = await server.start(host, port)
    except OSError as exc:
        log.error("status page not started on %s: %s", listen, exc)
        return None
    shown = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
    log.info("status page, /status.json and /metrics on http://%s/", shown)
    return server
