"""Prometheus metrics, made at scrape time from the status inputs (configuration, table, health, the last
cycle, the counters of every answering process): gdnsd's and PowerDNS's operators' set, named for promtool."""
from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from dnsbalance import __version__
from dnsbalance.ops import cluster_section
from dnsbalance.ops.status import SEVERITY, StatusInputs, summary
from dnsbalance.stats.counters import LATENCY_BUCKETS, LATENCY_SAMPLE

# The shown states that are a health check's verdict: only these have a `dnsbalance_target_up` series.
JUDGED = ("up", "down", "stale", "syncing")


class StatusCollector:
    """One registry collector; `source` reads the inputs (off the event loop: the web layer calls it in a
    thread)."""

    def __init__(self, source: Callable[[], StatusInputs]) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        inputs = self.source()
        yield from metrics(inputs)


def metrics(inputs: StatusInputs) -> Iterator[Any]:
    status = summary(inputs, regions=False)
    totals = inputs.totals
    info = GaugeMetricFamily("dnsbalance_build_info", "dnsbalance version and Python, always 1",
                             labels=["version", "python"])
    info.add_metric([__version__, platform.python_version()], 1)
    yield info

    queries = CounterMetricFamily("dnsbalance_queries", "Queries answered",
                                  labels=["type", "rcode", "country", "continent"])
    formerr = 0
    for (qtype, rcode, country, continent), count in sorted(totals.queries.items()):
        queries.add_metric([qtype, rcode, country or "none", continent or "none"], count)
        if rcode == "FORMERR":
            formerr += count
    yield queries
    events = totals.events
    received = CounterMetricFamily("dnsbalance_received_queries", "Queries received, by transport",
                                   labels=["transport"])
    for transport in ("udp", "tcp"):
        received.add_metric([transport], events.get(transport, 0))
    yield received
    yield CounterMetricFamily("dnsbalance_native_answers", "UDP queries answered by the native fast path "
                              "(dnsbalance/_native.c); the rest of the UDP queries by the Python path",
                              value=events.get("native", 0))
    yield CounterMetricFamily("dnsbalance_truncated_replies", "Replies cut to fit the client's size (TC set)",
                              value=events.get("truncated", 0))
    limited = CounterMetricFamily("dnsbalance_rate_limited_replies",
                                  "Replies the rate limiter dropped, or sent truncated (slip)", labels=["action"])
    for action in ("drop", "slip"):
        limited.add_metric([action], events.get(f"rrl_{action}", 0))
    yield limited
    cookies = CounterMetricFamily("dnsbalance_cookies", "DNS cookies: queries carrying one, and server cookies "
                                  "found valid or invalid", labels=["result"])
    for result in ("received", "valid", "invalid"):
        cookies.add_metric([result], events.get(f"cookie_{result}", 0))
    yield cookies
    yield CounterMetricFamily("dnsbalance_malformed_queries", "Queries answered FORMERR (malformed)",
                              value=formerr + events.get("formerr", 0))
    cumulative, running = [], 0
    for bound, count in zip([*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"], totals.latency):
        running += count
        cumulative.append((bound, running))
    yield HistogramMetricFamily("dnsbalance_answer_latency_seconds",
                                f"Time from a query's receipt to its reply, in the answering process; one query in "
                                f"{LATENCY_SAMPLE} is timed", buckets=cumulative, sum_value=totals.latency_sum)
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
    for key, count in sorted(totals.recent_first(inputs.now).items()):
        recent.add_metric(list(key), count)
    yield recent
    yield GaugeMetricFamily("dnsbalance_unique_clients", "Distinct client subnets or resolvers (estimate)",
                            value=status["queries"]["unique_clients"])

    # `_up` only for what the health checks judged, so that `dnsbalance_target_up == 0` means "found down" and
    # never "not probed yet"; `_usable` (the table's word) and `_state` (the page's word) cover every target.
    up = GaugeMetricFamily("dnsbalance_target_up", "1 when the health checks found a mirror (or relay service) "
                           "usable, 0 down or stale; no series until they judge it (pending, not probed, health "
                           "off, the operator's state)", labels=["target", "kind"])
    usable = GaugeMetricFamily("dnsbalance_target_usable", "1 when the table may draw a mirror (or relay service), "
                               "judged or not", labels=["target", "kind"])
    shown = GaugeMetricFamily("dnsbalance_target_state", "1 for the state a mirror (or relay service) is in, as the "
                              "status page shows it", labels=["target", "kind", "state"])
    latency = GaugeMetricFamily("dnsbalance_probe_latency_seconds", "Latency of the last probe", labels=["target"])
    lag = GaugeMetricFamily("dnsbalance_mirror_lag_seconds", "Stamp lag behind the master", labels=["target"])
    targets = [(m["name"], "mirror", m) for m in status["mirrors"]]
    targets += [(f"{r['name']}/{r['service']}", "relay", r) for r in status["relays"]]
    for name, kind, row in targets:
        if row["state"] in JUDGED:
            up.add_metric([name, kind], 1 if row["usable"] else 0)
        usable.add_metric([name, kind], 1 if row["usable"] else 0)
        shown.add_metric([name, kind, row["state"]], 1)
    for mirror in status["mirrors"]:
        if mirror["last_latency"] is not None:
            latency.add_metric([mirror["name"]], mirror["last_latency"])
        if mirror["lag"] is not None:
            lag.add_metric([mirror["name"]], mirror["lag"])
    yield up
    yield usable
    yield shown
    yield latency
    yield lag
    drained = GaugeMetricFamily("dnsbalance_drained", "1 for each mirror or relay an operator drained "
                                "(dnsbalance drain): out of every answer, whatever its health", labels=["target", "by"])
    ends = GaugeMetricFamily("dnsbalance_drain_end_timestamp_seconds", "When a drain given --for ends (unix time)",
                             labels=["target"])
    for name, drain in sorted(inputs.drains.items()):
        drained.add_metric([name, drain.by], 1)
        if drain.until is not None:
            ends.add_metric([name], drain.until)
    yield drained
    yield ends
    states = GaugeMetricFamily("dnsbalance_targets", "Mirrors and relay services by state", labels=["state"])
    for state in SEVERITY:
        states.add_metric([state], status["states"].get(state, 0))
    yield states

    cycle = status["last_cycle"]
    if cycle is not None:
        yield GaugeMetricFamily("dnsbalance_health_cycle_last_timestamp_seconds",
                                "When the last health cycle started (unix time)", value=cycle["started"])
        yield GaugeMetricFamily("dnsbalance_health_cycle_duration_seconds", "How long the last health cycle took",
                                value=cycle["duration"])
    master = GaugeMetricFamily("dnsbalance_master_serial_seen_timestamp_seconds",
                               "When this prober first saw the master publish its current serial (unix time): "
                               "a master that stops pushing leaves it behind", labels=["archive"])
    for archive, reference in sorted(inputs.health.archives.items()):
        if reference.master and reference.master_since:
            master.add_metric([archive], reference.master_since)
    yield master
    reloads = CounterMetricFamily("dnsbalance_reloads", "Configuration reloads since start, applied or refused",
                                  labels=["result"])
    for result in ("applied", "refused"):
        reloads.add_metric([result], inputs.reloads.get(result, 0))
    yield reloads
    signing = inputs.signing
    if signing is not None:  # public facts only: the key itself is never read here
        yield GaugeMetricFamily("dnsbalance_dnssec_key_tag", "Key tag of the zone's signing key", value=signing.tag)
        yield GaugeMetricFamily("dnsbalance_dnssec_signature_expiry_timestamp_seconds",
                                "Earliest expiration of the signatures in service (unix time)",
                                value=signing.earliest_expiry)
        yield GaugeMetricFamily("dnsbalance_dnssec_signatures_made", "Signatures made for the table in service "
                                "(the others were reused from the generation before)", value=signing.made)
        yield GaugeMetricFamily("dnsbalance_dnssec_rrsets_signed", "RRsets signed in the table in service",
                                value=len(signing.by_content))
        yield GaugeMetricFamily("dnsbalance_dnssec_signing_seconds", "Time spent signing the table in service",
                                value=signing.seconds)
        info = GaugeMetricFamily("dnsbalance_dnssec_signer_info", "Where the signing key came from (source: "
                                 "cluster, the copy of etcd's keys, or local) and what signed (engine: libcrypto "
                                 "batches, or cryptography without the C extension)", labels=["source", "engine"])
        info.add_metric([inputs.key_source or "local", signing.engine], 1)
        yield info
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

    # The answering processes' own CPU and memory, from their counters files (this process's are process_*)
    cpu = CounterMetricFamily("dnsbalance_answering_process_cpu_seconds",
                              "CPU time of each answering process, as of its last counters save",
                              labels=["process"])
    rss = GaugeMetricFamily("dnsbalance_answering_process_resident_memory_bytes",
                            "Resident memory of each answering process, as of its last counters save",
                            labels=["process"])
    for name, figures in sorted(totals.processes.items()):
        cpu.add_metric([name], figures["cpu_seconds"])
        rss.add_metric([name], figures["rss_bytes"])
    yield cpu
    yield rss
    yield from cluster_section.metrics(status)
