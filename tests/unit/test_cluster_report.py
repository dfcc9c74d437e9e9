"""`dnsbalance probe --json` with `cluster:` (dnsbalance/cluster/report.py cluster_json), pure: what each live
vantage point sees, this probe's own view and the consensus, as the text table has them."""
from __future__ import annotations

import json

from dnsbalance.cluster.member import Read
from dnsbalance.cluster.report import cluster_json
from dnsbalance.cluster.vote import Vote
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.health.verdict import Verdict

SETTINGS = ClusterSettings(("http://127.0.0.1:2379",), "ns3", "/dnsbalance/cdn.example.org/")
KNOWN = {"jp1": "jp1", "jp2": "jp2"}


def test_each_vantage_point_this_probe_and_the_consensus() -> None:
    votes = (Vote("ns1", "d1", 4, frozenset({"jp1"}), frozenset({"jp2"})),
             Vote("ns2", "d1", 9, frozenset({"jp1"}), frozenset({"jp2"})),
             Vote("ns3", "d2", 2, frozenset({"jp1", "jp2"}), frozenset()))
    read = Read(votes, {}, ("votes/garbage: not JSON",), ("ns9",))
    verdicts = (Verdict("jp1", True, "ok"), Verdict("jp2", True, "ok"), Verdict("other", False, "not known"))
    found = cluster_json(read, SETTINGS, verdicts, KNOWN)
    json.dumps(found)  # what --json prints
    assert found["connected"] is True and found["live"] == ["ns1", "ns2", "ns3"]
    assert found["drift"] is True and found["configurations"] == {"d1": ["ns1", "ns2"], "d2": ["ns3"]}
    assert found["unknown_writers"] == ["ns9"] and found["ignored"] == ["votes/garbage: not JSON"]
    targets = found["targets"]
    assert isinstance(targets, dict) and set(targets) == {"jp1", "jp2"}  # this configuration's targets only
    assert targets["jp2"] == {"seen": {"ns1": False, "ns2": False, "ns3": True}, "this_probe": True, "up": False,
                              "down_votes": ["ns1", "ns2"], "voters": 3, "needed": 2}
    assert targets["jp1"]["up"] is True and targets["jp1"]["down_votes"] == []


def test_etcd_out_of_reach_says_why() -> None:
    found = cluster_json("range: http://127.0.0.1:2379: ConnectionError", SETTINGS, (), KNOWN)
    assert found["connected"] is False and "ConnectionError" in str(found["problem"])
    assert "targets" not in found and found["instance"] == "ns3"
