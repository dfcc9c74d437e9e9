"""A prober with no IPv6 route, for tests/system/test_no_route.py: run as `unshare -rn python -m tests.no_route
FOLDER` it brings up `lo` in its new network namespace (nothing else: 127.0.0.0/8 and ::1 are all there is, so
every other IPv6 address has no route) and serves, probes and queries a fleet there, with the default health
settings. It prints what it saw as one JSON document.

The fleet (mirrors are real HTTP servers on 127.0.0.x; their IPv6 addresses are documentation ones the namespace
has no route to, so nothing can be sent to them):
  dual       127.0.0.2 serves the balanced name; 2001:db8::2 unreachable from the prober
  wronghost  127.0.0.3 answers 404 for the balanced name; 2001:db8::3 unreachable
  v6only     2001:db8::4 only (its URL at 127.0.0.4 serves the balanced name)
  dead       127.0.0.5 refuses connections; 2001:db8::5 unreachable
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import ROOT, start_server
from tests.mirrors import Archive, refused_url
from tests.vhosts import HostMirror

BALANCED = "deb.cdn.example.org"


def write_config(folder: Path, mirrors: dict[str, str]) -> Path:
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nttl: 30\nanswers: 4\nlisten: ['127.0.0.1:5353']\n"
        "nameservers: {ns1.cdn.example.org: [192.0.2.53]}\nsoa: {rname: hostmaster.example.org}\n"
        "geoip: {database: builtin}\nstate_dir: state\n"
        "health: {interval: 1, timeout: 1}\n")  # addresses, vhost and traces: the defaults (on)
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(f"  {n}: {d}\n" for n, d in mirrors.items()))
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  {n}: 100\n" for n in mirrors))
    return folder


def answered(query, rdtype: str, rounds: int = 60) -> list[str]:  # type: ignore[no-untyped-def]
    found: set[str] = set()
    for _ in range(rounds):
        found |= {rr.address for rrset in query(BALANCED, rdtype).answer for rr in rrset}
    return sorted(found)


def main(folder: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    archive = Archive()
    dual = HostMirror(archive, ["127.0.0.2"], {BALANCED, "127.0.0.2"})
    wrong = HostMirror(archive, ["127.0.0.3"], {"127.0.0.3"})
    v6only = HostMirror(archive, ["127.0.0.4"], {BALANCED, "127.0.0.4"})
    dead = refused_url().replace("127.0.0.1", "127.0.0.5")
    config = write_config(folder / "config", {
        "dual": f"{{addresses: [127.0.0.2, '2001:db8::2'], url: '{dual.url('127.0.0.2')}'}}",
        "wronghost": f"{{addresses: [127.0.0.3, '2001:db8::3'], url: '{wrong.url('127.0.0.3')}'}}",
        "v6only": f"{{addresses: ['2001:db8::4'], url: '{v6only.url('127.0.0.4')}'}}",
        "dead": f"{{addresses: [127.0.0.5, '2001:db8::5'], url: '{dead}'}}",
    })
    probe = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    server = start_server(config, folder / "server.log")
    try:
        server.wait_cycles(3, timeout=30)
        seen = {"A": answered(server.query, "A"), "AAAA": answered(server.query, "AAAA"),
                "status": httpx.get(f"{server.status_url}/status.json", timeout=5).json()["last_cycle"],
                "page": httpx.get(f"{server.status_url}/", timeout=5).text}
    finally:
        server.stop()
        for mirror in (dual, wrong, v6only):
            mirror.stop()
    seen |= {"probe": probe.stdout, "probe_code": probe.returncode, "log": server.log()}
    print(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
