"""Alert rules and dashboard (issue 26 item 8): deploy/prometheus/dnsbalance-rules.yml passes `promtool check
rules` and its own `promtool test rules`, and every metric the rules and deploy/grafana/dnsbalance.json read is
one a real server exports (scraped from a running one that probes, signs and has a cluster configured). Targets
the health checks have not judged have no `dnsbalance_target_up` series, so `== 0` alerts mean "found down"."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from tests.harness import ROOT, make_config, start_server
from tests.mirrors import Archive, Mirror, refused_url
from tests.promql import exported_names, label_values_metric, metric_names

RULES = ROOT / "deploy" / "prometheus" / "dnsbalance-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "dnsbalance-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dnsbalance.json"
PROMETHEUS_OWN = {"up"}  # recorded by Prometheus per scrape target, not exported by the server


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool missing: the Debian package prometheus ships it (tools/install-test-packages)"
    return found


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"SUCCESS: 1\d rules found", checked.stdout), checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            timeout=60)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def rule_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {name for group in groups for rule in group["rules"] for name in metric_names(rule["expr"])}


def dashboard_names() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    names = {name for panel in board["panels"] for target in panel.get("targets", [])
             for name in metric_names(target["expr"])}
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            names |= label_values_metric(query.get("query", ""))
    return names


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Iterator[str]:
    """/metrics of a server past two health cycles: jp1, jp2 fresh, jp3 refusing connections, the others with
    no url (never probed); DNSSEC signing on; a cluster whose etcd refuses connections."""
    base = tmp_path_factory.mktemp("alerting")
    folder = make_config(base / "config", country_mmdb)
    archive = Archive()
    fleet = {name: Mirror(archive) for name in ("jp1", "jp2", "master")}
    urls = {"jp1": fleet["jp1"].url, "jp2": fleet["jp2"].url, "jp3": refused_url()}
    text = (folder / "mirrors.yaml").read_text()
    for name, url in urls.items():
        text = text.replace(f"  {name}: {{addresses: [", f"  {name}: {{url: '{url}', addresses: [")
    (folder / "mirrors.yaml").write_text(text)
    with (folder / "dnsbalance.yaml").open("a") as handle:
        # the fixture's documentation addresses are never probed, only each URL, as in harness.probe_everything
        handle.write(f"health: {{interval: 1, timeout: 0.5, master: '{fleet['master'].url}', addresses: false, "
                     "vhost: false, traces: false}\n"
                     "dnssec: {sign: true}\n")
    # the key made before the cluster is configured: with `cluster:`, keygen makes it in etcd, which refuses here
    made = subprocess.run([sys.executable, "-m", "dnsbalance", "dnssec", "keygen", "--config", str(folder)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert made.returncode == 0, made.stderr
    with (folder / "dnsbalance.yaml").open("a") as handle:
        handle.write(f"cluster: {{etcd: ['{refused_url().removesuffix('/debian/')}'], instance: ns1}}\n")
    server = start_server(folder, base / "server.log", ipv6=False)
    try:
        server.wait_cycles(2, timeout=30)
        assert server.query("deb.cdn.example.org").answer
        yield httpx.get(f"{server.status_url}/metrics", timeout=10).text
    finally:
        server.stop()
        for mirror in fleet.values():
            mirror.stop()


def test_every_metric_of_the_rules_and_dashboard_is_exported(scraped: str) -> None:
    exported = exported_names(scraped)
    rules, board = rule_names(), dashboard_names()
    assert len(rules) >= 10 and len(board) >= 20, (rules, board)  # the extraction found what is there
    assert rules - exported - PROMETHEUS_OWN == set(), "rules read metrics the server does not export"
    assert board - exported == set(), "the dashboard reads metrics the server does not export"


def test_only_judged_targets_have_an_up_series(scraped: str) -> None:
    up = dict(re.findall(r'^dnsbalance_target_up\{kind="mirror",target="(\w+)"\} (\S+)$', scraped, re.MULTILINE))
    assert up == {"jp1": "1.0", "jp2": "1.0", "jp3": "0.0"}  # jp4, as1, ... have no url: never probed
    assert 'dnsbalance_target_state{kind="mirror",state="not probed",target="jp4"} 1.0' in scraped
    assert 'dnsbalance_target_state{kind="mirror",state="down",target="jp3"} 1.0' in scraped
    assert 'dnsbalance_target_usable{kind="mirror",target="jp4"} 1.0' in scraped  # drawn from, as before
    assert 'dnsbalance_target_usable{kind="mirror",target="jp3"} 0.0' in scraped
    assert re.search(r'^dnsbalance_master_serial_seen_timestamp_seconds\{archive="[^"]*"\} 1\.\d+e\+09$', scraped,
                     re.MULTILINE), scraped
    assert re.search(r"^dnsbalance_dnssec_signature_expiry_timestamp_seconds \S+$", scraped, re.MULTILINE)
    assert "dnsbalance_cluster_connected 0.0" in scraped


def test_promtool_accepts_the_scrape(scraped: str) -> None:
    checked = subprocess.run([promtool(), "check", "metrics"], input=scraped, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout + checked.stderr
