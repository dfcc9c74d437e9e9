"""The zone's signing state on the status page and in `/status.json`, pure: from the table's ZoneSignatures (public
facts only, never a key) to the document's `dnssec` section, a banner when signatures are overdue or expired,
and a paragraph with the keys, the earliest expiry and the signatures made."""
from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dnsbalance.configuration.model import Algorithm
from dnsbalance.dnssec.timing import RESIGN_CHECK, when
from dnsbalance.ops.status_document import DnssecState

if TYPE_CHECKING:  # read, never made here
    from dnsbalance.compiler.signatures import ZoneSignatures


def dnssec_state(signing: ZoneSignatures | None, refresh: int, source: str | None = None) -> DnssecState | None:
    if signing is None:
        return None
    return DnssecState(key_tag=signing.tag, algorithm=int(signing.algorithm),
                       algorithm_name=Algorithm(signing.algorithm).name,
                       keys=[{"tag": tag, "algorithm": algorithm, "role": role}
                             for tag, algorithm, role in signing.keys],
                       inception=signing.window.inception, earliest_expiry=signing.earliest_expiry,
                       refresh_at=float(signing.earliest_expiry - refresh), signatures_made=signing.made,
                       rrsets_signed=len(signing.by_content), signing_seconds=round(signing.seconds, 4),
                       source=source or "local", engine=signing.engine)


SOURCES = {"cluster": "the cluster's key (a copy of the keys in etcd)",
           "local": "this server's own key (its key folder)"}


def banners(status: Mapping[str, Any]) -> list[str]:
    state = status.get("dnssec")
    if not state:
        return []
    now = status["now"]
    if state["earliest_expiry"] <= now:
        return [f"<div class='banner red' id='dnssec-expired'>DNSSEC signatures expired at "
                f"{when(state['earliest_expiry'])} <span>&mdash; validating resolvers fail the zone</span></div>"]
    if now > state["refresh_at"] + 2 * RESIGN_CHECK:
        return [f"<div class='banner orange' id='dnssec-overdue'>DNSSEC signatures not made again since "
                f"{when(state['refresh_at'])} <span>&mdash; they expire at {when(state['earliest_expiry'])}</span>"
                f"</div>"]
    return []


def section(status: Mapping[str, Any]) -> str:
    state = status.get("dnssec")
    if not state:
        return ""
    e = html.escape
    keys = ", ".join(f"{k['tag']} ({k['role']})" for k in state["keys"])
    return (f"<h2>DNSSEC</h2><p id='dnssec'>Signed with key tag {state['key_tag']}, algorithm {state['algorithm']} "
            f"({e(state['algorithm_name'])}), {e(SOURCES.get(state.get('source', 'local'), ''))}; DNSKEYs "
            f"published: {e(keys)}. Earliest signature expiry "
            f"{when(state['earliest_expiry'])}, made again from {when(state['refresh_at'])}. This table: "
            f"{state['signatures_made']} signatures made ({state['rrsets_signed']} RRsets signed in all) in "
            f"{state['signing_seconds']:g} s by {e(state.get('engine', ''))}.</p>")
