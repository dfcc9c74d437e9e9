"""The operator's HTTP listener (127.0.0.1 by default): `/` status page, `/status.json`, `/metrics`.

A deliberately small HTTP/1.1 server on the event loop: GET only, one request per connection, no
external assets, bounded request size and time. Each answer is made in a thread of its own, RENDERS at most at
once: a big table takes a while to summarise, and the loop (TCP queries, health cycles) must not wait for it.
The threads are daemons, so a stop never waits for a page nobody will read (an executor's threads are joined at
exit: a SIGTERM during renders of a big page took a minute).

`/status.json` is the summary (mirrors, relays, a line per region); `?region=LABEL` (repeatable, e.g.
`country JP`, `JP`, `continent EU`) and `?page=N` (PAGE_SIZE regions each) give the regions' pools. The page
takes `?region=LABEL` too; both take `?history=6h|24h|7d`, how far back the history strips go.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from dnsbalance.ops.history import VIEWS, view_seconds
from dnsbalance.ops.metrics import StatusCollector
from dnsbalance.ops.page import render_page, render_region
from dnsbalance.ops.status import PAGE_SIZE, StatusInputs, find_region, region_details, summary
from dnsbalance.ops.status_document import ConfigurationOnDisk, GeoipInUse, InstanceInfo, ServedInputs, Summary
from dnsbalance.protocol.addresses import host_port

if TYPE_CHECKING:
    from dnsbalance.serving.balancer import Balancer

log = logging.getLogger(__name__)
StatusSource = Callable[[], StatusInputs]
REQUEST_LIMIT = 8192
REQUEST_TIMEOUT = 5.0
RENDERS = 2  # pages made at once; more requests wait their turn on the event loop
SMALL_TABLE_POOLS = 200  # up to this many pools the main page shows every region's; past it, none (a click away)


T = TypeVar("T")


async def in_daemon_thread(work: Callable[[], T], setup: Callable[[], None] | None = None) -> T:
    """`work()` on a daemon thread of its own, awaited. A thread that finishes after the loop has closed
    (the process is stopping) drops its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():  # not cancelled meanwhile
            setter(value)

    def run() -> None:
        if setup is not None:
            setup()
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which logs it
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this page any more

    threading.Thread(target=run, name="status-page", daemon=True).start()
    return await future


class StatusServer:
    def __init__(self, source: StatusSource, setup: Callable[[], None] | None = None) -> None:
        """`setup`: run first in each page's thread (the supervisor lowers its priority)."""
        self.source = source
        self.setup = setup
        self.renders = asyncio.Semaphore(RENDERS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(source))  # type: ignore[arg-type]
        ProcessCollector(registry=self.registry)  # this process's CPU, memory, open files (process_*)
        self.server: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket) -> tuple[str, int]:
        """Serve on a listening socket bound by the caller (process/instance.py bind_status)."""
        self.server = await asyncio.start_server(self._client, sock=sock, limit=REQUEST_LIMIT)
        return self.server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def route(self, target: str) -> tuple[int, str, bytes]:
        """One request, answered in full; runs in a worker thread."""
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)
        if path not in ("/status.json", "/", "/index.html"):
            return 404, "text/plain", b"not found\n"
        inputs = self.source()
        seconds = view_seconds(query.get("history", [None])[0])
        if seconds is None:
            return 400, "text/plain", f"history: one of {', '.join(VIEWS)}\n".encode()
        inputs = dataclasses.replace(inputs, history_seconds=seconds)
        asked = query.get("region", [])
        if path == "/status.json":
            if asked or "page" in query:
                labels = [found for a in asked if (found := find_region(inputs, a)) is not None]
                if "page" in query:
                    try:
                        page = int(query["page"][0])
                    except ValueError:
                        return 400, "text/plain", b"page: a number\n"
                    every = [label for label, tier in inputs.table.labelled_tiers() if tier.usable or tier.fail_open]
                    labels += every[page * PAGE_SIZE:(page + 1) * PAGE_SIZE] if page >= 0 else []
                if not labels:
                    return 404, "application/json", b'{"error": "no such region"}\n'
                body: Any = {"zone": inputs.config.settings.zone, "generation": inputs.table.generation,
                             "regions": region_details(inputs, labels)}
            else:
                body = summary(inputs)
            return 200, "application/json", json.dumps(body, indent=1).encode()
        if asked:
            label = find_region(inputs, asked[0])
            if label is None:
                return 404, "text/plain", b"no such region\n"
            return 200, "text/html; charset=utf-8", render_region(summary(inputs, regions=False),
                                                                  region_details(inputs, [label])[0]).encode()
        status = summary(inputs)
        html = render_page(status, region_details(inputs, shown_regions(status)))
        return 200, "text/html; charset=utf-8", html.encode()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            # the server is stopping: the client sees its connection closed. Not raised on: asyncio's stream
            # server (Python 3.11) logs a handler that ends cancelled as an error, with a traceback.
            pass
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                return  # not a request: nothing to answer
            if method not in ("GET", "HEAD"):
                code, kind, body = 405, "text/plain", b"GET only\n"
            else:
                try:
                    async with self.renders:
                        code, kind, body = await in_daemon_thread(partial(self.route, path), self.setup)
                except Exception:  # a bug: logged, and the client is told rather than left with a closed socket
                    log.exception("status page error on %r", path[:200])
                    code, kind, body = 500, "text/plain", b"internal error: see the server's log\n"
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                      500: "Internal Server Error"}[code]
            writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         f"Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode())
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            log.exception("status page error")


def shown_regions(status: Summary) -> list[str]:
    """The regions whose pools the main page shows: every one of a small table; of a big one none, since even
    a dozen regions of 100 pools each make megabytes: the region table (problems first) links to each
    region's page, `/?region=LABEL`."""
    rows = status["regions"]
    if sum(r["pool_count"] for r in rows) <= SMALL_TABLE_POOLS:
        return [r["region"] for r in rows]
    return []


async def start_status(balancer: Balancer, sock: socket.socket | None, identity: InstanceInfo,
                       refresh: Callable[[], None] | None = None,
                       setup: Callable[[], None] | None = None) -> StatusServer | None:
    """The status listener of the supervisor, on `sock` (bound at the start: a port in use stopped it then);
    `identity`: which instance the page says it is. `refresh`: brings the answering processes' counts in
    before a page or scrape reads them (called on the page's thread); `setup`: run first in each page's
    thread."""
    if sock is None:
        return None
    from dnsbalance.stats.counters import all_totals
    from dnsbalance.health.events import EventTail

    counters = balancer.state.counters_dir
    own = balancer.stats if balancer.stats.path is not None else None

    events, operations = EventTail(), EventTail()

    def source() -> StatusInputs:
        if refresh is not None:
            refresh()
        serving = balancer.serving  # one snapshot for the whole page: its configuration and table agree
        return StatusInputs(serving.config, serving.table, balancer.health, balancer.last_cycle,
                            all_totals(counters, own), serving.built_at, time.time(), dict(balancer.pools_changed),
                            [*events(balancer.state.events), *operations(balancer.state.operations)],
                            dict(balancer.reloads), served_inputs(serving), serving.compiled.signatures,
                            balancer.drains, key_source=balancer.key_source)

    def served_inputs(serving: Any) -> ServedInputs:
        geoip = serving.geoip
        return ServedInputs(
            instance=identity,
            geoip=GeoipInUse(path=str(geoip.path), type=geoip.database_type, origin=geoip.origin,
                             description=geoip.description),
            configuration=ConfigurationOnDisk(directory=str(serving.config.directory),  # edited files not yet served
                                              files_differ=balancer.changed_on_disk(serving.config.directory),
                                              auto_apply=serving.config.settings.reload.auto_apply),
            # several name servers (dnsbalance/cluster/): None without `cluster:`
            cluster=balancer.cluster.as_json() if balancer.cluster is not None else None)

    server = StatusServer(source, setup)
    bound = await server.start(sock)
    shown = host_port(bound[0], bound[1])
    log.info("status page, /status.json and /metrics on http://%s/", shown)
    return server
