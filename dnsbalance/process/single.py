"""The single-process role: listeners, the prober, the status page and the counters in one process."""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from dnsbalance.ops.web import start_status
from dnsbalance.process.instance import record_reload
from dnsbalance.process.scheduling import HealthScheduler
from dnsbalance.server import open_listeners, save_counters
from dnsbalance.serving.balancer import Balancer

log = logging.getLogger(__name__)


async def serve_single(balancer: Balancer, listen: list[str], config_dir: Path, status_listen: str | None) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads the configuration (a bad one is refused)."""
    loop = asyncio.get_running_loop()
    health: HealthScheduler | None = None

    def reload() -> None:
        problems = balancer.reload(config_dir)
        record_reload(balancer.state, problems, balancer.generation)
        if health is not None:
            health.reschedule()

    # Signals first: once a socket is bound, a client (or an operator's SIGHUP) may already be there.
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    listeners = await open_listeners(balancer, listen)
    for shown in listeners.bound:
        log.info("serving %s on %s (udp, tcp)", balancer.config.settings.zone, shown)
    if balancer.config.settings.health.enabled:
        health = HealthScheduler(balancer, config_dir)
        health.start()
    else:
        log.info("health checks are off (health.enabled: false): every configured entry counts as usable")
    web = await start_status(balancer, status_listen)
    saver = asyncio.create_task(save_counters(balancer))
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        saver.cancel()
        balancer.stats.save()
        if web is not None:
            await web.stop()
        if health is not None:
            await health.stop()
        listeners.close()
