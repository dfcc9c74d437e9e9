"""Answering never waits on the supervisor (issue 14 item 7): tables are built, reloads read, answers
precomputed and status pages rendered in the supervisor, while queries are answered by processes forked
with a finished table. A supervisor frozen outright (SIGSTOP, a stand-in for any length of work holding
its GIL) must not delay a single UDP or TCP answer; and a reload under way keeps answering from the old
table until the new one is in service."""
from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import httpx

from dnsbalance.geo.countries import countries
from tests.harness import Server, processes_of, settled, start_server


def answers_while_frozen(server: Server) -> None:
    server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        for _ in range(30):
            assert server.query("deb.cdn.example.org", subnet="1.0.16.0/24").answer
        for _ in range(5):
            assert server.query("deb.cdn.example.org", tcp=True).answer
        # far from the healthy figure (milliseconds), and far below what a stall in one process would be
        # (forever: a stopped process answers nothing)
        assert time.monotonic() - started < 10
    finally:
        server.process.send_signal(signal.SIGCONT)


def test_answers_go_on_while_the_supervisor_is_stopped(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        settled(server, workers=1)
        answers_while_frozen(server)
        # and after it wakes, the supervisor still runs its answerer: a reload reaches the clients
        (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp2: 0\n")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while {rr.address for rr in server.query("deb.cdn.example.org", subnet="1.0.16.0/24").answer[0]} \
                != {"192.0.2.2"}:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        assert len(processes_of(server)) >= 1
    finally:
        server.stop()


def test_workers_answer_while_the_supervisor_is_stopped(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    try:
        settled(server, workers=2)
        answers_while_frozen(server)
    finally:
        server.stop()


def test_status_page_is_served_by_the_supervisor_not_the_answerers(tmp_path: Path, config_dir: Path) -> None:
    """The page and /metrics come from the supervisor: with the answerers stopped it still renders, and
    with the supervisor stopped the answers still come."""
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        settled(server, workers=1)
        for _ in range(20):
            server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        answerers = processes_of(server)
        for pid in answerers:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert httpx.get(f"{server.status_url}/metrics", timeout=10).status_code == 200
        finally:
            for pid in answerers:
                os.kill(pid, signal.SIGCONT)
        # the answerers' counts reach the supervisor's page (sent up once a second)
        server.wait_counted(20, 10, "the answerers' counts")
    finally:
        server.stop()


def test_a_big_first_table_goes_into_service_complete(tmp_path: Path, country_mmdb: Path) -> None:
    """A table too big to precompute before the first answerers start is completed by the supervisor; the
    completed table is then put in service by a new generation, so answerers do not keep computing answers
    on first use, each for itself, for as long as they live."""
    folder = tmp_path / "config"
    (folder / "country").mkdir(parents=True)
    shutil.copy(country_mmdb, folder / "test.mmdb")
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\ngeoip: {database: test.mmdb}\n"
        f"health: {{enabled: false}}\nstate_dir: {tmp_path / 'state'}\n")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  m{i}: {{addresses: [198.18.0.{i}]}}\n" for i in range(80)))
    rng = random.Random(5)
    tables = ["".join(f"name{n}:\n" + "".join(f"  m{m}: {rng.randrange(10000)}\n" for m in rng.sample(range(80), 8))
                      for n in range(40)) for _ in range(150)]
    for code, table in zip(sorted({c.alpha2 for c in countries().values()}), tables):
        (folder / "country" / f"{code}.yaml").write_text(table)
    (folder / "default.yaml").write_text(tables[0])
    # no precomputing before the first answer: however fast this machine, the rest is completed in service
    server = start_server(folder, tmp_path / "log", ipv6=False, extra=("--start-precompute", "0"))
    try:
        first = processes_of(server)
        assert server.query("name1.cdn.example.org", subnet="1.0.16.0/24").answer  # answered while completing
        rest = server.wait_for_log(r"every pool's answers precomputed \((\d+) now", timeout=120)
        assert int(rest.group(1)) > 0, "the table was small enough to be complete at start: make it bigger"
        deadline = time.monotonic() + 20
        while processes_of(server) & first or len(processes_of(server)) != 1:
            assert time.monotonic() < deadline, "the completed table was not put in service"
            time.sleep(0.05)
        assert server.query("name1.cdn.example.org", subnet="1.0.16.0/24").answer
    finally:
        server.stop()
