"""The CPU benchmark's own parts (bench/cpu_per_query.py): its /proc reader counts every process of a server's
tree, reaped children included, and its wire-format queries carry the client subnet they say."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dns.edns
import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cpu_per_query import CLOCK_TICKS, ecs_query, process_tree, run_queue_wait  # noqa: E402


def cpu_seconds(leader: int) -> float:
    return sum(process_tree(leader).values()) / CLOCK_TICKS

# A session leader whose child burns 0.3 s of CPU, says "burnt" and sleeps until it gets a line, then exits
# and is reaped by the leader, which then says "reaped" and sleeps.
LEADER = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", '''
    import sys, time
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    print("burnt", flush=True)
    sys.stdin.readline()
    '''], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    print(child.pid, child.stdout.readline().strip(), flush=True)
    sys.stdin.readline()
    child.communicate("go\\n")
    print("reaped", flush=True)
    time.sleep(30)
""")


def test_cpu_of_a_process_tree_counts_children_alive_and_reaped() -> None:
    leader = subprocess.Popen([sys.executable, "-c", LEADER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        child_pid, burnt = leader.stdout.readline().split()  # type: ignore[union-attr]
        assert burnt == "burnt"
        assert int(child_pid) in process_tree(leader.pid)
        alive = cpu_seconds(leader.pid)
        assert alive >= 0.28
        leader.stdin.write("go\n")  # type: ignore[union-attr]
        leader.stdin.flush()  # type: ignore[union-attr]
        assert leader.stdout.readline().strip() == "reaped"  # type: ignore[union-attr]
        assert int(child_pid) not in process_tree(leader.pid)
        assert cpu_seconds(leader.pid) >= alive - 0.02  # the reaped child's time moved to the leader's cutime
    finally:
        leader.kill()
        leader.wait()


def test_cpu_of_an_idle_process_stays_put() -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.05)
        assert set(process_tree(sleeper.pid)) == {sleeper.pid}
        assert cpu_seconds(sleeper.pid) < 0.05
    finally:
        sleeper.kill()
        sleeper.wait()


BURN = ("import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
        "print(1, flush=True)\nsys.stdin.readline()")


def test_run_queue_wait_counts_time_without_a_core() -> None:
    """Two busy processes on one core: each waits while the other runs."""
    burners = [subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", BURN], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for burner in burners:
            assert burner.stdout.readline().strip() == "1"  # type: ignore[union-attr]
        assert run_queue_wait([b.pid for b in burners]) >= 0.15
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_wire_query_carries_its_client_subnet() -> None:
    message = dns.message.from_wire(ecs_query("deb.cdn.example.org", "202.96.0.0", 24))
    assert str(message.question[0].name) == "deb.cdn.example.org."
    assert message.edns == 0 and message.payload == 4096
    (option,) = message.options
    assert isinstance(option, dns.edns.ECSOption)
    assert (option.address, option.srclen, option.scopelen) == ("202.96.0.0", 24, 0)
