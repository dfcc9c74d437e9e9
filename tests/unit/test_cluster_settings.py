"""`cluster:` and `health.source` in dnsbalance.yaml, read in process: defaults, and each mistake named with its
file and line (a password never repeated)."""
from __future__ import annotations

from pathlib import Path

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.problems import Severity

SETTINGS = """\
zone: cdn.example.org
nameservers:
  ns1.cdn.example.org: [192.0.2.53]
"""
MIRRORS = "mirrors:\n  alpha: {addresses: [192.0.2.1]}\n"
DEFAULT = "deb:\n  alpha: 10\n"


def folder(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "dnsbalance.yaml").write_text(SETTINGS + extra)
    (tmp_path / "mirrors.yaml").write_text(MIRRORS)
    (tmp_path / "default.yaml").write_text(DEFAULT)
    return tmp_path


def test_cluster_defaults(tmp_path: Path) -> None:
    config, problems = check_config(folder(tmp_path, "cluster: {etcd: ['http://127.0.0.1:2379']}\n"
                                                     "health: {source: 127.0.0.11}\n"))
    assert problems == [] and config is not None
    cluster = config.settings.cluster
    assert cluster is not None and cluster.etcd == ("http://127.0.0.1:2379",)
    assert cluster.prefix == "/dnsbalance/cdn.example.org/" and cluster.down_quorum == "majority"
    assert cluster.instance  # the host name
    assert config.settings.health.source == "127.0.0.11"


def test_without_cluster_nothing_changes(tmp_path: Path) -> None:
    config, _ = check_config(folder(tmp_path, ""))
    assert config is not None and config.settings.cluster is None and config.settings.health.source is None


def test_each_mistake_named_with_its_line_and_no_password(tmp_path: Path) -> None:
    config, problems = check_config(folder(tmp_path, """\
cluster:
  etcd: ['http://127.0.0.1:2379', 'ftp://x:1', 'http://root:hunter2@127.0.0.1:2379']
  instance: 'ns/1'
  down_quorum: most
  user: dnsbalance
  password: 12345
  color: blue
health: {source: not-an-address}
"""))
    assert config is None
    errors = [str(p) for p in problems if p.severity is Severity.ERROR]
    text = "\n".join(errors)
    assert "dnsbalance.yaml:5: cluster: etcd endpoint 'ftp://x:1'" in text
    assert "cluster: etcd endpoint" in text and "hunter2" not in text
    assert "dnsbalance.yaml:6: cluster: instance must be" in text
    assert "dnsbalance.yaml:7: cluster: down_quorum must be majority, all or a number" in text
    assert "dnsbalance.yaml:9: cluster: password must be a non-empty string" in text and "12345" not in text
    assert "dnsbalance.yaml:10: cluster: unknown key 'color'" in text
    assert "dnsbalance.yaml:11: health: source must be an IP address" in text
