"""The cluster's shared DNSSEC keys, the pure parts and the key folder (dnssec/key_files.py, key_folder.py,
rollover.py's steps over files, cluster/keystore.py's parsing and its follower fed by a watch's board, with an etcd
that cannot be reached: a closed loopback port)."""
from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from dnsbalance.cluster import keystore, layout
from dnsbalance.cluster.member import read_prefix
from dnsbalance.configuration.model import Algorithm, ClusterSettings, Settings, SOASettings
from dnsbalance.dnssec import key_folder, rollover
from dnsbalance.dnssec.key_files import Action, digest, key_set, reconcile
from dnsbalance.dnssec.keys import KEY_FILE, NEXT_FILE, RETIRING_FILE, KeyProblem, from_pem, generate, pem_of
from dnsbalance.ops import dnssec_section

PREFIX = "/dnsbalance/cdn.example.org/"
ZONE = "cdn.example.org"


def pem() -> bytes:
    return pem_of(generate(Algorithm.ECDSAP256SHA256))


def tag(data: bytes) -> int:
    return from_pem(data, "test").tag


def here(name: str) -> str:
    return f"keys/{name}"


def there(name: str) -> str:
    return f"etcd {name}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reconcile_adopts_follows_keeps_seeds_and_refuses() -> None:
    ours, theirs, nxt = pem(), pem(), pem()
    cluster = {KEY_FILE: theirs}
    assert reconcile({}, False, {}, here, there).action is Action.NOTHING
    seed = reconcile({KEY_FILE: ours}, False, {}, here, there)
    assert seed.action is Action.SEED and f"tag {tag(ours)}" in seed.message
    adopt = reconcile({}, False, cluster, here, there)
    assert adopt.action is Action.WRITE and adopt.message == f"adopted the cluster's key tag {tag(theirs)}"
    assert reconcile({KEY_FILE: theirs}, True, cluster, here, there).action is Action.KEEP
    assert reconcile({KEY_FILE: theirs}, False, cluster, here, there).action is Action.KEEP
    # a marked copy follows the cluster whatever it became (a server down through a whole rollover)
    follow = reconcile({KEY_FILE: ours}, True, cluster, here, there)
    assert follow.action is Action.WRITE and "follows" in follow.message
    # a key put here by hand that is one of the cluster's published keys: it becomes a copy
    rolled = {KEY_FILE: theirs, NEXT_FILE: nxt}
    assert reconcile({KEY_FILE: theirs}, False, rolled, here, there).action is Action.WRITE
    assert reconcile({KEY_FILE: nxt}, False, rolled, here, there).action is Action.WRITE
    # one the cluster does not have: refused, with both tags, the fix, and never the key
    refused = reconcile({KEY_FILE: ours}, False, cluster, here, there)
    assert refused.action is Action.REFUSE
    assert f"tag {tag(ours)}" in refused.message and f"tag {tag(theirs)}" in refused.message
    assert "dnssec fetch --force" in refused.message and "PRIVATE" not in refused.message
    damaged = reconcile({KEY_FILE: b"garbage"}, False, cluster, here, there)
    assert damaged.action is Action.REFUSE and "keys/zone.key is not a readable private key" in damaged.message
    assert reconcile({KEY_FILE: b"garbage"}, True, {}, here, there).action is Action.REFUSE
    with pytest.raises(KeyProblem, match="etcd zone.key"):  # the cluster's key damaged: nothing decided
        reconcile({}, False, {KEY_FILE: b"garbage"}, here, there)


def test_rollover_steps_are_pure_over_the_files() -> None:
    settings = Settings(zone=ZONE, nameservers=(), soa=SOASettings(rname="h.example.org"))
    old = pem()
    files = {KEY_FILE: old}
    started, step = rollover.start_files(files, Algorithm.ECDSAP256SHA256, 1000.0, there)
    assert files == {KEY_FILE: old}  # the input is a value, untouched
    assert set(started) == {KEY_FILE, NEXT_FILE, "rollover.json"} and "etcd next.key" in step.message
    assert rollover.state_of(started) == {"started": 1000.0} and step.key.tag == tag(started[NEXT_FILE])
    with pytest.raises(KeyProblem, match="under way"):
        rollover.start_files(started, Algorithm.ECDSAP256SHA256, 1000.0, there)
    with pytest.raises(KeyProblem, match="too early to switch"):
        rollover.switch_files(started, settings, 1001.0, there)
    switched, _ = rollover.switch_files(started, settings, 1000.0 + rollover.publish_wait(settings), there)
    assert switched[KEY_FILE] == started[NEXT_FILE] and switched[RETIRING_FILE] == old and NEXT_FILE not in switched
    assert set(rollover.state_of(switched)) == {"started", "switched"}
    with pytest.raises(KeyProblem, match="too early to finish"):
        rollover.finish_files(switched, settings, 1000.0 + rollover.publish_wait(settings) + 1, there)
    finished, step = rollover.finish_files(switched, settings, 1e9, there)
    assert finished == {KEY_FILE: started[NEXT_FILE]} and step.key.tag == tag(old)
    with pytest.raises(KeyProblem, match="nothing to finish"):
        rollover.finish_files(finished, settings, 1e9, there)


def test_the_key_folder_copy_is_marked_and_a_hand_edit_unmarks_it(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    files = {KEY_FILE: pem(), NEXT_FILE: pem(), "rollover.json": b'{"started": 1.0}\n'}
    key_folder.write_copy(folder, files, [1, 2], 7)
    assert key_folder.read(folder) == files and key_folder.is_copy(folder, files)
    for name in files:
        assert os.stat(folder / name).st_mode & 0o777 == 0o600
    marker = json.loads((folder / key_folder.MARKER).read_text())
    assert marker["digest"] == digest(files) and marker["tags"] == [1, 2] and "PRIVATE" not in str(marker)
    # the cluster's next step: the copy follows, and the files gone are deleted
    key_folder.write_copy(folder, {KEY_FILE: files[NEXT_FILE]}, [2], 8)
    assert sorted(p.name for p in folder.iterdir()) == [key_folder.MARKER, KEY_FILE]
    (folder / KEY_FILE).write_bytes(pem())  # by hand
    assert not key_folder.is_copy(folder, key_folder.read(folder))
    aside = key_folder.set_aside(folder, 1e9)
    assert aside is not None and (aside / KEY_FILE).exists() and key_folder.read(folder) == {}
    assert key_folder.set_aside(folder, 1e9) is None


def test_the_cluster_keys_are_parsed_off_the_prefix_and_never_taken_for_votes() -> None:
    key = pem()
    entries = [(layout.dnssec_key(PREFIX, KEY_FILE), key), (layout.dnssec_key(PREFIX, "other.txt"), b"x"),
               (layout.drain_key(PREFIX, "jp1"), b"{}"), (f"{PREFIX}dnssec/a/b", b"y")]
    assert keystore.parse(entries, PREFIX) == {KEY_FILE: key}
    assert layout.split(PREFIX, layout.dnssec_key(PREFIX, KEY_FILE)) == (layout.DNSSEC, KEY_FILE)
    read = read_prefix([(layout.dnssec_key(PREFIX, KEY_FILE), key)], PREFIX)
    assert read.ignored == () and read.votes == ()  # the key is neither a vote nor logged as a stray value


def test_the_follower_adopts_from_the_watch_and_never_overwrites_a_key_the_cluster_lacks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = ClusterSettings((f"http://127.0.0.1:{closed_port()}",), "ns2", PREFIX)
    theirs, ours = pem(), pem()
    board = [(layout.dnssec_key(PREFIX, KEY_FILE), theirs), (layout.vote_key(PREFIX, "ns1"), b"{}")]
    changed: list[bool] = []
    folder = tmp_path / "keys"
    follower = keystore.KeyFollower(settings, folder, watched=lambda: board, changed=lambda: changed.append(True))
    try:
        with caplog.at_level(logging.INFO):
            follower.once()
        assert follower.reads == 0 and changed == [True] and follower.due.is_set()
        assert key_folder.read(folder) == {KEY_FILE: theirs} and key_folder.is_copy(folder, {KEY_FILE: theirs})
        assert f"adopted the cluster's key tag {tag(theirs)}" in caplog.text
        follower.due.clear()
        follower.once()  # nothing new on the board: nothing done
        assert changed == [True] and not follower.due.is_set()

        (folder / KEY_FILE).write_bytes(ours)  # a key put there by hand; then the cluster's keys change
        rolled = pem()
        board[0:0] = [(layout.dnssec_key(PREFIX, NEXT_FILE), rolled)]
        with caplog.at_level(logging.INFO):
            follower.once()
            follower.once()
        assert (folder / KEY_FILE).read_bytes() == ours and not (folder / NEXT_FILE).exists()
        assert caplog.text.count("not the cluster's") == 1 and changed == [True]
        assert "PRIVATE" not in caplog.text

        board.clear()  # no watch: a read of etcd, which cannot be reached, is logged once and changes nothing
        follower.watched = lambda: None
        follower.once()
        assert follower.down is not None and follower.reads == 1
    finally:
        follower.stop()


def test_the_status_section_says_whose_key_signs() -> None:
    state = {"key_tag": 1, "algorithm": 13, "algorithm_name": "ECDSAP256SHA256", "keys": [], "earliest_expiry": 0,
             "refresh_at": 0, "signatures_made": 0, "rrsets_signed": 0, "signing_seconds": 0.0}
    assert "the cluster&#x27;s key" in dnssec_section.section({"dnssec": {**state, "source": "cluster"}})
    assert "this server&#x27;s own key" in dnssec_section.section({"dnssec": {**state, "source": "local"}})


def test_a_key_set_reads_every_role() -> None:
    files = {KEY_FILE: pem(), RETIRING_FILE: pem()}
    keys = key_set(files, here)
    assert keys is not None and keys.retiring is not None and keys.next is None
    assert key_set({}, here) is None
