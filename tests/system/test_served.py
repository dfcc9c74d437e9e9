"""What apt gets (issue 23 items 1 and 2), on the real path: the server probes every address a mirror is served
at, asking for the balanced name as Host (and as TLS SNI, certificate checked), and answers an address only on
its own verdict. Mirrors are real HTTP(S) servers on 127.0.0.x and ::1."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, Server, start_server
from tests.mirrors import Archive
from tests.vhosts import HostMirror, dead_port, issue, make_ca

BALANCED = "deb.cdn.example.org"


def write_config(folder: Path, mirrors: dict[str, str], ca: Path) -> Path:
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nttl: 30\nanswers: 4\nlisten: ['127.0.0.1:20053']\n"
        "nameservers: {ns1.cdn.example.org: [192.0.2.53]}\nsoa: {rname: hostmaster.example.org}\n"
        "geoip: {database: builtin}\nstate_dir: state\n"
        f"health: {{interval: 1, timeout: 1, addresses: true, vhost: true, ca: '{ca}', certificate_days: 10}}\n")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(f"  {n}: {d}\n" for n, d in mirrors.items()))
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  {n}: 100\n" for n in mirrors))
    return folder


def addresses(server: Server, rdtype: str, rounds: int = 60) -> set[str]:
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query(BALANCED, rdtype)
        found |= {rr.address for rrset in reply.answer for rr in rrset}
    return found


def test_only_addresses_and_names_that_serve_are_answered(tmp_path: Path) -> None:
    archive = Archive()
    ca = make_ca(tmp_path / "ca")
    # each serves its URL's host (an address here, as the mirror stamp check asks for it) and the names listed
    dual = HostMirror(archive, ["127.0.0.2"], {BALANCED, "127.0.0.2"})  # its ::1 is in mirrors.yaml, and dead
    other = HostMirror(archive, ["127.0.0.3"], {BALANCED, "127.0.0.3"})  # its AAAA is v4-mapped: one listener
    wrong_host = HostMirror(archive, ["127.0.0.4"], {"127.0.0.4"})  # 404 for the balanced name
    named = HostMirror(archive, ["127.0.0.7"], {"mirror.example.net", "127.0.0.7"})  # its own name (`host:`)
    # both certificates are valid for the address in the URL, so the mirror stamp check passes them both;
    # only the served check, with the balanced name as SNI, tells them apart
    tls_good = HostMirror(archive, ["127.0.0.5"], None, issue(ca, tmp_path / "ca", BALANCED, 5, "127.0.0.5"))
    tls_bad = HostMirror(archive, ["127.0.0.6"], None,
                         issue(ca, tmp_path / "ca", "ftp.other.example", 30, "127.0.0.6"))
    fleet = [dual, other, wrong_host, named, tls_good, tls_bad]
    assert dead_port("::1", dual.port)
    config = write_config(tmp_path / "config", {
        "dual": f"{{addresses: [127.0.0.2, '::1'], url: '{dual.url('127.0.0.2')}'}}",
        "other": f"{{addresses: [127.0.0.3, '::ffff:127.0.0.3'], url: '{other.url('127.0.0.3')}'}}",
        "wronghost": f"{{addresses: [127.0.0.4], url: '{wrong_host.url('127.0.0.4')}'}}",
        "named": f"{{addresses: [127.0.0.7], url: '{named.url('127.0.0.7')}', host: mirror.example.net}}",
        "tlsgood": f"{{addresses: [127.0.0.5], url: '{tls_good.url('127.0.0.5')}'}}",
        "tlsbad": f"{{addresses: [127.0.0.6], url: '{tls_bad.url('127.0.0.6')}'}}",
    }, ca.cert)
    server = start_server(config, tmp_path / "log", ipv6=False)
    try:
        server.wait_cycles(2, timeout=30)
        assert addresses(server, "A") == {"127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.7"}, server.log()
        # the dual-stack mirror's dead IPv6 is never handed out while its IPv4 is
        assert addresses(server, "AAAA") == {"::ffff:127.0.0.3"}
        # the probes asked for the names apt asks for, at the addresses apt is given
        assert ("127.0.0.2", BALANCED) in dual.seen and ("127.0.0.4", BALANCED) in wrong_host.seen
        assert ("127.0.0.7", "mirror.example.net") in named.seen
        assert not any(host == BALANCED for _, host in named.seen)

        probe = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config)], check=False, cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        rows = {line.split()[0]: line for line in probe.stdout.splitlines() if line.strip()}
        assert "FAIL" in rows[f"dual@::1#{BALANCED}"] and "cannot connect" in rows[f"dual@::1#{BALANCED}"]
        assert "ok" in rows[f"dual@127.0.0.2#{BALANCED}"]
        assert "HTTP 404" in rows[f"wronghost@127.0.0.4#{BALANCED}"]
        assert rows[f"wronghost@127.0.0.4#{BALANCED}"].split()[1] == "404"  # the http column
        assert "ok" in rows["wronghost"]  # the stamp check alone passes it: the URL has no virtual host
        assert "certificate" in rows[f"tlsbad@127.0.0.6#{BALANCED}"].lower() and "ok" in rows["tlsbad"]
        assert re.search(r"ok .*WARNING: certificate expires in (4\.9|5\.0) days", rows[f"tlsgood@127.0.0.5#{BALANCED}"])

        explain = subprocess.run([sys.executable, "-m", "dnsbalance", "explain", "--config", str(config),
                                  "127.0.0.1", BALANCED], check=False, cwd=ROOT, capture_output=True, text=True,
                                 timeout=60)
        assert f"wronghost@127.0.0.4#{BALANCED}): HTTP 404" in explain.stdout, explain.stdout
    finally:
        server.stop()
        for mirror in fleet:
            mirror.stop()
