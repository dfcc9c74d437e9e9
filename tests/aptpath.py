"""The whole path apt takes, for real, inside a private network namespace (tests/netns.py):

    apt-get update  ->  glibc resolver (resolv.conf: 127.0.0.1)  ->  unbound on 127.0.0.1:53
                    ->  stub zone cdn.example.org  ->  dnsbalance on 127.0.0.53:53
    apt-get update  ->  HTTP, port 80, on the SRV targets' addresses  ->  mirrors on 127.0.0.2, .3, .4 ...

Each mirror is a process (tests/debrepo.py) serving a minimal repository with an access log; apt runs with
state, cache, lists and configuration of its own (APT_CONFIG names every directory and reads none of the host's
apt.conf.d), as root without a sandbox user (the test's folders are private to root).
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.debrepo import Request, read_log, write_repository
from tests.netns import Namespace

ROOT = Path(__file__).resolve().parent.parent
ZONE = "cdn.example.org"
NAME = f"deb.{ZONE}"
SRV_OWNER = f"_http._tcp.{NAME}"
DNSBALANCE = "127.0.0.53"
RESOLVER = "127.0.0.1"
UNBOUND_CONTROL_PORT = 8953


@dataclass(frozen=True)
class MirrorSpec:
    name: str
    address: str
    priority: int  # DNS Balance's number: weight = 10000 - priority

    @property
    def weight(self) -> int:
        return 10000 - self.priority

    @property
    def target(self) -> str:
        """The SRV target dnsbalance names for this mirror under deb."""
        return f"{self.name}.mirror.{NAME}"


def dnsbalance_config(folder: Path, mirrors: list[MirrorSpec], ttl: int) -> Path:
    """A zone with one balanced name, `deb`, in the default table (loopback clients match no country).
    Health: one cycle at start-up, then none for ten minutes, so a mirror killed later is still served (the
    case SRV fallback is for); every address probed on its own under the balanced name, as apt will ask."""
    folder.mkdir(parents=True)
    (folder / "dnsbalance.yaml").write_text(f"""zone: {ZONE}
ttl: {ttl}
answers: 4
listen: ["{DNSBALANCE}:53"]
nameservers:
  ns1.{ZONE}: [{DNSBALANCE}]
soa: {{rname: hostmaster.example.org, minimum: {ttl}}}
geoip: {{database: builtin, ecs: true}}
state_dir: state
status: "{DNSBALANCE}:8053"
health: {{interval: 600, timeout: 2, fall: 1, rise: 1, addresses: true, vhost: true, traces: false}}
""")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  {m.name}: {{addresses: [{m.address}], url: 'http://{m.address}/debian/'}}\n" for m in mirrors))
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  {m.name}: {m.priority}\n" for m in mirrors))
    return folder


def unbound_config(folder: Path) -> Path:
    """A resolver as a host would run one: port 53 on 127.0.0.1, the zone reached through a stub (nothing else
    is reachable), every client query and reply logged, remote control on loopback for cache flushes."""
    folder.mkdir(parents=True)
    config = folder / "unbound.conf"
    config.write_text(f"""server:
    interface: {RESOLVER}
    port: 53
    chroot: ""
    username: ""
    directory: "{folder}"
    pidfile: ""
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    log-queries: yes
    log-replies: yes
    num-threads: 1
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    module-config: "iterator"

remote-control:
    control-enable: yes
    control-interface: {RESOLVER}
    control-port: {UNBOUND_CONTROL_PORT}
    control-use-cert: no

stub-zone:
    name: "{ZONE}"
    stub-addr: {DNSBALANCE}@53
""")
    return config


def apt_config(folder: Path) -> Path:
    """APT_CONFIG for one run: every directory under folder, the host's configuration unread."""
    for sub in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "etc/trusted.gpg.d",
                "state/lists/partial", "cache/archives/partial", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "state" / "status").touch()
    (folder / "etc" / "sources.list").write_text(f"deb [trusted=yes] http://{NAME}/debian/ stable main\n")
    config = folder / "apt.conf"
    config.write_text(f"""Dir::Etc::main "/dev/null";
Dir::Etc::parts "{folder}/etc/apt.conf.d";
Dir::Etc::preferences "{folder}/etc/preferences";
Dir::Etc::preferencesparts "{folder}/etc/preferences.d";
Dir::Etc::sourcelist "{folder}/etc/sources.list";
Dir::Etc::sourceparts "{folder}/etc/sources.list.d";
Dir::Etc::trusted "{folder}/etc/trusted.gpg";
Dir::Etc::trustedparts "{folder}/etc/trusted.gpg.d";
Dir::State "{folder}/state";
Dir::State::status "{folder}/state/status";
Dir::Cache "{folder}/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Log "{folder}/log";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::http::Proxy "DIRECT";
Acquire::Retries "0";
Acquire::EnableSrvRecords "true";
Debug::Acquire::SrvRecs "true";
""")
    return config


@dataclass(frozen=True)
class AptRun:
    returncode: int
    output: str  # stdout and stderr
    offered: list[tuple[str, int, int]]  # SRV records apt got: (target, priority, weight), in apt's sorted order
    selected: list[str]  # SRV targets apt tried, in order
    requests: dict[str, list[Request]]  # mirror -> requests it logged during the run
    seconds: float

    @property
    def failures(self) -> list[str]:
        """apt's own error and warning lines (Err:, W:, E:)."""
        return [line for line in self.output.splitlines() if re.match(r"^(Err:|W:|E:)", line)]

    @property
    def served_by(self) -> list[str]:
        return [name for name, requests in self.requests.items() if requests]


class AptPath:
    def __init__(self, base: Path, mirrors: list[MirrorSpec], ttl: int = 60) -> None:
        self.base = base
        self.mirrors = {m.name: m for m in mirrors}
        self.repository = write_repository(base / "www").parent
        resolv = base / "resolv.conf"
        resolv.write_text(f"nameserver {RESOLVER}\n")
        self.namespace = Namespace(resolv)
        self.servers: dict[str, subprocess.Popen] = {}
        self.runs = 0
        try:
            for name in self.mirrors:
                self.start_mirror(name)
            self.config = dnsbalance_config(base / "config", mirrors, ttl)
            self.dnsbalance_log = base / "dnsbalance.log"
            self.dnsbalance = self.namespace.popen(
                [sys.executable, "-m", "dnsbalance", "serve", "--config", str(self.config)],
                log=self.dnsbalance_log.open("wb"), cwd=ROOT)
            self._wait_for(self.dnsbalance_log, r"health cycle done: table generation \d+ in service", 30)
            self.unbound_conf = unbound_config(base / "unbound")
            self.unbound_log = base / "unbound" / "unbound.log"
            self.unbound = self.namespace.popen(["unbound", "-d", "-c", str(self.unbound_conf)],
                                                log=self.unbound_log.open("wb"))
            self._wait_for_resolver()
        except BaseException:
            self.close()
            raise

    # mirrors

    def log_path(self, name: str) -> Path:
        return self.base / f"{name}.access.log"

    def start_mirror(self, name: str) -> None:
        spec = self.mirrors[name]
        out = (self.base / f"{name}.out").open("wb")  # a restart waits for its own line
        self.servers[name] = self.namespace.popen(
            [sys.executable, "-m", "tests.debrepo", "--address", spec.address, "--port", "80",
             "--root", str(self.repository), "--log", str(self.log_path(name))], log=out, cwd=ROOT)
        self._wait_for(self.base / f"{name}.out", rf"serving on {re.escape(spec.address)}:80", 15,
                       self.servers[name])

    def kill_mirror(self, name: str) -> None:
        """SIGKILL, as a crashed server: its port refuses connections from now on."""
        self.namespace.stop(self.servers[name], sig=9)

    def requests(self) -> dict[str, list[Request]]:
        return {name: read_log(self.log_path(name)) for name in self.mirrors}

    # the resolver

    def flush(self) -> None:
        """Forget the zone in unbound's caches: the next lookup reaches dnsbalance, as a client behind another
        resolver (or after the TTL) would."""
        done = self.namespace.run(["unbound-control", "-c", str(self.unbound_conf), "flush_zone", ZONE])
        assert done.returncode == 0 and "ok" in done.stdout, (done.stdout, done.stderr)

    def resolver_log(self) -> str:
        return self.unbound_log.read_text(errors="replace")

    def served_queries(self, rdtype: str) -> int:
        """Queries of this type dnsbalance counted (its /metrics, read inside the namespace; counts reach the
        supervisor about once a second)."""
        url = f"http://{DNSBALANCE}:8053/metrics"
        done = self.namespace.run([sys.executable, "-c", f"import urllib.request; "
                                   f"print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"])
        assert done.returncode == 0, done.stderr
        return sum(int(float(m[1])) for m in re.finditer(
            rf'^dnsbalance_queries_total{{[^}}]*\btype="{rdtype}"[^}}]*}} (\S+)$', done.stdout, re.MULTILINE))

    # apt

    def apt_update(self) -> AptRun:
        """One `apt-get update` with state of its own (a client that never ran before)."""
        self.runs += 1
        folder = self.base / "apt" / str(self.runs)
        config = apt_config(folder)
        before = {name: len(requests) for name, requests in self.requests().items()}
        started = time.monotonic()
        env = {"APT_CONFIG": str(config), "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        done = self.namespace.run(["apt-get", "update"], timeout=60, env=env)
        seconds = time.monotonic() - started
        output = done.stdout + done.stderr
        offered = [(m[1].rstrip("."), int(m[2]), int(m[3]))
                   for m in re.finditer(r"SrvRecs: got (\S+) prio: (\d+) weight: (\d+)", output)]
        selected = [m[1].rstrip(".") for m in re.finditer(r"PopFromSrvRecs: selecting (\S+)", output)]
        after = self.requests()
        return AptRun(done.returncode, output, offered, selected,
                      {name: after[name][before[name]:] for name in self.mirrors}, seconds)

    # plumbing

    def _wait_for(self, log: Path, pattern: str, timeout: float, process: subprocess.Popen | None = None) -> None:
        process = process or self.dnsbalance
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if re.search(pattern, text):
                return
            if process.poll() is not None:
                raise AssertionError(f"{log.name}: exited ({process.returncode}):\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"{log.name}: no {pattern!r} within {timeout}s:\n{text}")

    def _wait_for_resolver(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.unbound.poll() is not None:
                raise AssertionError(f"unbound exited:\n{self.resolver_log()}")
            if self.namespace.run(["unbound-control", "-c", str(self.unbound_conf), "status"]).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"unbound not up within {timeout}s:\n{self.resolver_log()}")

    def close(self) -> None:
        self.namespace.close()
