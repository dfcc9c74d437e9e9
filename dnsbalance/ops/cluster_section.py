"""The cluster on the status page and in /metrics, pure: from status.json's `cluster` section (the member's
ClusterView.as_json()): a banner when etcd is out of reach or name servers serve different configurations, a table
of every vantage point's view per target next to the consensus, and the metrics."""
from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def banners(status: Mapping[str, Any]) -> list[str]:
    cluster = status.get("cluster")
    if not cluster:
        return []
    e = html.escape
    out = []
    if cluster["connected"] is False:
        out.append(f"<div class='banner red' id='cluster-down'>etcd unreachable: serving this name server's own "
                   f"verdicts <span>&mdash; {e(cluster['problem'][:300])}</span></div>")
    if cluster["drift"]:
        shown = "; ".join(f"{', '.join(names)}: {digest}" for digest, names in cluster["configurations"].items())
        out.append(f"<div class='banner orange' id='cluster-drift'>Name servers serve different configurations "
                   f"<span>&mdash; {e(shown)}</span></div>")
    unknown = cluster.get("unknown_writers") or []
    if unknown:
        out.append(f"<div class='banner orange' id='cluster-unknown'>Votes in etcd from name(s) not in "
                   f"cluster.instances, ignored <span>&mdash; {e(', '.join(unknown)[:300])}</span></div>")
    if cluster["ignored"]:
        out.append(f"<div class='banner orange' id='cluster-ignored'>{len(cluster['ignored'])} value(s) in etcd "
                   f"ignored <span>&mdash; {e('; '.join(cluster['ignored'])[:400])}</span></div>")
    return out


def section(status: Mapping[str, Any]) -> str:
    """Per target, what each vantage point saw and the consensus; which instance serves which configuration."""
    cluster = status.get("cluster")
    if not cluster:
        return ""
    e = html.escape
    names = [cluster["instance"], *cluster["peers"]]
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = []
    for key, target in cluster["targets"].items():
        seen = "".join(f"<td>{'-' if target['seen'].get(n) is None else 'up' if target['seen'][n] else 'down'}</td>"
                       for n in names)
        rows.append(f"<tr><td>{e(key)}</td>{seen}<td>{'up' if target['up'] else 'down'} "
                    f"({len(target['down_votes'])}/{target['voters']} down, {target['needed']} needed)</td></tr>")
    configs = ", ".join(f"{digest}: {', '.join(n)}" for digest, n in cluster["configurations"].items())
    state = {True: "connected", False: "unreachable", None: "not tried yet"}[cluster["connected"]]
    watch = (cluster.get("watch") or {}).get("streaming")
    watched = {True: "following the others' votes as they arrive", False: "watch lost (votes read at each cycle)",
               None: "no watch (votes read at each cycle)"}[watch]
    unknown = cluster.get("unknown_writers") or []
    return (f"<h2>Name servers</h2><p id='cluster'>{e(cluster['instance'])}: etcd {state}; {watched}; "
            f"{len(cluster['peers'])} other live name server(s); down_quorum {e(str(cluster['down_quorum']))}; "
            f"configurations: {e(configs)}</p>"
            + (f"<p id='cluster-unknown-writers'>Unknown writers (not in cluster.instances, ignored): "
               f"{e(', '.join(unknown))}</p>" if unknown else "")
            + (f"<table id='cluster-targets'><tr><th>target</th>{head}<th>consensus</th></tr>{''.join(rows)}</table>"
               if rows else ""))


def metrics(status: Mapping[str, Any]) -> Iterator[Any]:
    cluster = status.get("cluster")
    if not cluster:
        return
    yield GaugeMetricFamily("dnsbalance_cluster_connected", "1 while etcd answers this name server",
                            value=1 if cluster["connected"] else 0)
    yield GaugeMetricFamily("dnsbalance_cluster_watching", "1 while a watch brings the others' votes as they come",
                            value=1 if (cluster.get("watch") or {}).get("streaming") else 0)
    yield GaugeMetricFamily("dnsbalance_cluster_unknown_writers", "Names not in cluster.instances with a vote in etcd",
                            value=len(cluster.get("unknown_writers") or []))
    yield GaugeMetricFamily("dnsbalance_cluster_peers", "Other live name servers seen in etcd",
                            value=len(cluster["peers"]))
    yield GaugeMetricFamily("dnsbalance_cluster_configurations", "Distinct configurations the name servers serve",
                            value=len(cluster["configurations"]))
    down = GaugeMetricFamily("dnsbalance_cluster_down_votes", "Live vantage points that see a target down",
                             labels=["target"])
    for key, target in cluster["targets"].items():
        down.add_metric([key], len(target["down_votes"]))
    yield down
    requests = CounterMetricFamily("dnsbalance_cluster_etcd_requests", "Requests to etcd since start")
    requests.add_metric([], cluster["etcd"]["requests"])
    yield requests
    sent = CounterMetricFamily("dnsbalance_cluster_etcd_bytes", "Bytes to and from etcd since start",
                               labels=["direction"])
    sent.add_metric(["sent"], cluster["etcd"]["sent_bytes"])
    sent.add_metric(["received"], cluster["etcd"]["received_bytes"])
    yield sent
