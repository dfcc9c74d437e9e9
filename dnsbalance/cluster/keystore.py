"""One DNSSEC key set for every name server of a cluster, kept in etcd (`PREFIX dnssec/zone.key`, `next.key`,
`retiring.key`, `rollover.json`: the files of a key folder, layout.py), as PowerDNS keeps its keys in its shared
database. etcd is the source of truth; each name server keeps a marked copy in its key folder (key_folder.py), which
its table builds sign with, so that it starts and signs while etcd is unreachable.

- `keygen` makes the key and puts it in etcd with a create-only transaction: a cluster never gets a second key.
- `at_start` reconciles the key folder with the cluster's keys before the first table (key_files.reconcile): no
  local key, adopt the cluster's; a local key the cluster lacks, refuse; the cluster without a key, publish this
  server's (create-only).
- `KeyFollower` keeps the copy in step while the server runs (another server took a rollover step): through the
  health member's watch when it streams, else by a read every FALLBACK seconds (follower.py, as the drains'), then
  the server builds a new signed generation.
- `rollover` takes a step on the cluster's keys in one transaction (compare-and-swap on every file's revision),
  the waits counted from the cluster's record.

Nothing here logs, prints or raises a key: only tags (KeySet's repr holds no key either).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dnsbalance.cluster import layout
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.cluster.follower import TIMEOUT, Follower, Watched
from dnsbalance.configuration.model import ClusterSettings, Settings
from dnsbalance.dnssec import key_folder, rollover
from dnsbalance.dnssec.key_files import NAMES, Action, KeyFiles, Reconciled, Where, describe, key_set, only_keys
from dnsbalance.dnssec.key_files import reconcile, tags
from dnsbalance.dnssec.keys import KEY_FILE, KeyProblem, KeySet, SigningKey, from_pem, generate, pem_of

log = logging.getLogger(__name__)


def there(prefix: str) -> Where:
    return lambda name: f"the cluster's {name} ({layout.dnssec_key(prefix, name)} in etcd)"


def here(directory: Path) -> Where:
    return lambda name: str(directory / name)


@dataclass(frozen=True)
class Stored:
    """The cluster's key files as one read had them, with each file's mod revision (absent: not listed)."""

    files: Mapping[str, bytes]
    revisions: Mapping[str, int]
    revision: int = 0  # of the read

    def __repr__(self) -> str:  # the files are private keys: never in a log or a traceback's locals
        return f"Stored(files={sorted(self.files)}, revisions={dict(self.revisions)}, revision={self.revision})"


def parse(entries: list[tuple[str, bytes]], prefix: str) -> dict[str, bytes]:
    """The key set's files among the values under the prefix, pure; anything else under dnssec/ is left out."""
    found = {}
    for key, value in entries:
        where = layout.split(prefix, key)
        if where is not None and where[0] == layout.DNSSEC and where[1] in NAMES:
            found[where[1]] = bytes(value)
    return found


def read(link: EtcdLink, prefix: str) -> Stored:
    revision, found = link.range(prefix + layout.DNSSEC)
    files = parse([(key, value) for key, value, _ in found], prefix)
    revisions = {key[len(prefix + layout.DNSSEC):]: modified for key, _, modified in found}
    return Stored(files, {name: revisions[name] for name in files}, revision)


def commit(link: EtcdLink, prefix: str, before: Stored, after: KeyFiles) -> bool:
    """The cluster's files from `before` to `after` in one transaction, only if no file moved since `before` was
    read (every file of the set compared, absent ones at revision 0): False, and nothing changed, if one did."""
    expected = {layout.dnssec_key(prefix, name): before.revisions.get(name, 0) for name in NAMES}
    puts = {layout.dnssec_key(prefix, name): bytes(after[name]) for name in NAMES
            if name in after and before.files.get(name) != after[name]}
    deletes = [layout.dnssec_key(prefix, name) for name in NAMES if name in before.files and name not in after]
    return link.transaction(expected, puts, deletes)


def unreachable(exc: EtcdDown) -> KeyProblem:
    return KeyProblem(f"etcd cannot be reached ({exc}): with `cluster:` the zone's keys live in etcd, and this "
                      f"command changes them there first; nothing was changed")


def _link(settings: Settings) -> tuple[ClusterSettings, EtcdLink]:
    cluster = settings.cluster
    assert cluster is not None
    return cluster, EtcdLink(cluster, TIMEOUT)


def keygen(settings: Settings) -> SigningKey:
    """The cluster's key, made here and created in etcd only if the cluster has none; then the local copy."""
    cluster, link = _link(settings)
    directory = settings.key_dir
    try:
        pem = pem_of(generate(settings.dnssec.algorithm))
        key = from_pem(pem, there(cluster.prefix)(KEY_FILE))
        for _ in range(2):
            stored = read(link, cluster.prefix)
            if KEY_FILE not in stored.files and KEY_FILE in key_folder.read(directory):
                raise KeyProblem(f"{directory / KEY_FILE} already exists: keygen never overwrites a key (the "
                                 f"cluster has none: this server publishes it as the cluster's at its start; move "
                                 f"the key folder away to make a new one)")
            if KEY_FILE in stored.files:
                theirs = key_set(stored.files, there(cluster.prefix))
                assert theirs is not None
                raise KeyProblem(f"the cluster already has a DNSSEC key ({describe(theirs)}, "
                                 f"{there(cluster.prefix)(KEY_FILE)}): keygen never makes a second one. Every name "
                                 f"server copies it into its key folder at its start, or now with `dnsbalance dnssec "
                                 f"fetch --config DIR`")
            if commit(link, cluster.prefix, stored, {KEY_FILE: pem}):
                break
        else:
            raise KeyProblem("the cluster's keys kept changing while the key was made: nothing was changed")
    except EtcdDown as exc:
        raise unreachable(exc) from None
    finally:
        link.close()
    key_folder.write_copy(directory, {KEY_FILE: pem}, [key.tag], 0)
    return key


def cluster_keys(settings: Settings) -> tuple[KeySet | None, Stored]:
    """The cluster's keys (None: it has none); EtcdDown, KeyProblem for a damaged one."""
    cluster, link = _link(settings)
    try:
        stored = read(link, cluster.prefix)
    finally:
        link.close()
    return key_set(stored.files, there(cluster.prefix)), stored


def settle(link: EtcdLink, prefix: str, directory: Path, stored: Stored, attempts: int = 2) -> Reconciled:
    """The key folder reconciled with the cluster's keys as `stored` has them: a copy written (adopted or
    followed), this server's key published when the cluster has none, or a refusal left to the caller. EtcdDown,
    KeyProblem (a damaged cluster key, an unreadable folder)."""
    local = key_folder.read(directory)
    copy = key_folder.is_copy(directory, local)
    decision = reconcile(local, copy, stored.files, here(directory), there(prefix))
    if decision.action is Action.SEED:
        if not stored.revision:  # a watch's view, without revisions: read before the create-only transaction
            stored = read(link, prefix)
            if stored.files and attempts:
                return settle(link, prefix, directory, stored, attempts - 1)
        if commit(link, prefix, stored, only_keys(local)):
            key_folder.write_copy(directory, only_keys(local), tags(decision.local), 0)
            return decision
        if attempts:  # another server published its key first: that one is the cluster's
            return settle(link, prefix, directory, read(link, prefix), attempts - 1)
        raise EtcdDown("the cluster's keys kept changing")
    if decision.action is Action.WRITE or (decision.action is Action.KEEP and not copy):  # not yet marked
        key_folder.write_copy(directory, only_keys(stored.files), tags(decision.cluster), stored.revision)
    return decision


def at_start(settings: Settings) -> str | None:
    """Before the first table: the key folder made a copy of the cluster's keys. None: start (the key folder's keys
    sign); else why this server must not start. etcd unreachable: the key folder's copy, logged."""
    cluster, link = _link(settings)
    try:
        decision = settle(link, cluster.prefix, settings.key_dir, read(link, cluster.prefix))
    except EtcdDown as exc:
        log.warning("dnssec: etcd not reachable at start (%s): signing with the key folder's keys as they are "
                    "(%s); they are compared with the cluster's once etcd answers", exc, settings.key_dir)
        return None
    except KeyProblem as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot write the cluster's keys into the key folder {settings.key_dir}: {exc.strerror}"
    finally:
        link.close()
    if decision.action in (Action.REFUSE, Action.NOTHING):
        return decision.message
    log.info("dnssec: %s", decision.message)
    return None


def fetch(settings: Settings, force: bool, now: float) -> str:
    """`dnsbalance dnssec fetch`: the cluster's keys into the key folder (a key there that the cluster lacks is
    set aside with --force, never deleted). What was done; KeyProblem when nothing was."""
    cluster, link = _link(settings)
    directory = settings.key_dir
    try:
        stored = read(link, cluster.prefix)
        if KEY_FILE not in stored.files:
            raise KeyProblem("the cluster has no DNSSEC key: `dnsbalance dnssec keygen --config DIR` makes it (a "
                             "server whose key folder has one publishes it at its start)")
        aside = None
        local = key_folder.read(directory)
        decision = reconcile(local, key_folder.is_copy(directory, local), stored.files, here(directory),
                             there(cluster.prefix))
        if decision.action is Action.REFUSE:
            if not force:
                refusal = decision.message.split(" Fix: ")[0].rstrip(".")
                raise KeyProblem(f"{refusal}; --force sets it aside (kept in the key folder's replaced-*) and copies "
                                 f"the cluster's")
            aside = key_folder.set_aside(directory, now)
        decision = settle(link, cluster.prefix, directory, stored)
    except EtcdDown as exc:
        raise unreachable(exc) from None
    finally:
        link.close()
    kept = f"; this server's key was set aside in {aside}" if aside else ""
    return (f"{directory}: {describe(decision.cluster)}, a copy of the cluster's keys{kept} ({decision.message}); a "
            f"running server signs with it within seconds")


def take_step(settings: Settings, step: str, now: float, force: bool) -> rollover.Step:
    """A rollover step on the cluster's keys (one transaction), then the local copy."""
    cluster, link = _link(settings)
    where = there(cluster.prefix)
    try:
        stored = read(link, cluster.prefix)
        if step == "start":
            after, done = rollover.start_files(stored.files, settings.dnssec.algorithm, now, where, force)
        elif step == "switch":
            after, done = rollover.switch_files(stored.files, settings, now, where, force)
        else:
            after, done = rollover.finish_files(stored.files, settings, now, where, force)
        if not commit(link, cluster.prefix, stored, after):
            raise KeyProblem("the cluster's keys changed while this step was taken (a step on another name "
                             "server?): nothing was changed; see `dnsbalance dnssec status` and take it again")
        try:
            settle(link, cluster.prefix, settings.key_dir, read(link, cluster.prefix))
        except (EtcdDown, KeyProblem, OSError) as exc:  # the step is taken; this server's copy follows later
            log.warning("dnssec: the local copy was not updated (%s); the server follows the cluster", exc)
    except EtcdDown as exc:
        raise unreachable(exc) from None
    finally:
        link.close()
    return rollover.Step(done.message.replace("(`dnsbalance reload`)", "(every name server of the cluster follows "
                                                                        "within seconds)"), done.key)


class KeyFollower(Follower):
    """On a daemon thread of its own: the cluster's keys into this server's key folder as they change, then
    `changed()` (the supervisor builds a new signed generation). A key folder the cluster does not have is left
    as it is and logged (the keys in service go on signing)."""

    log = log
    failure = "dnssec: following the cluster's keys failed; trying again"

    def __init__(self, settings: ClusterSettings, directory: Path, watched: Watched = lambda: None,
                 changed: Callable[[], None] = lambda: None) -> None:
        super().__init__(settings, watched, "dnsbalance-cluster-keys")
        self.directory = directory
        self.changed = changed
        self.due = threading.Event()  # a new copy was written: the next build signs with it
        self.seen: dict[str, bytes] | None = None  # the cluster's files at the last look
        self.reported = ""  # the refusal last logged

    def look(self) -> None:
        self.once()

    def once(self) -> None:
        prefix = self.settings.prefix
        watched = self.watched()
        try:
            if watched is not None:
                stored = Stored(parse(watched, prefix), {})
            elif not self.read_due():
                return
            else:
                stored = read(self.link, prefix)
            if self.seen is not None and dict(stored.files) == self.seen:
                return
            decision = settle(self.link, prefix, self.directory, stored)
        except EtcdDown as exc:
            self.lost(exc, "dnssec: the cluster's keys not followed, no answer from etcd (%s); the key folder's keys "
                           "go on signing")
            return
        except KeyProblem as exc:
            self._refused(str(exc))
            self.seen = dict(stored.files)
            return
        except OSError as exc:  # the key folder cannot be written: tried again at the next look
            self._refused(f"cannot write the cluster's keys into {self.directory}: {exc.strerror}")
            return
        self.back("dnssec: the cluster's keys followed from etcd again")
        self.seen = dict(stored.files) if decision.action is not Action.SEED else None
        if decision.action is Action.REFUSE:
            self._refused(decision.message)
        elif decision.action in (Action.WRITE, Action.SEED):
            self.reported = ""
            how = "through the cluster's watch" if watched is not None else "read from etcd"
            log.log(logging.WARNING if decision.action is Action.SEED else logging.INFO, "dnssec: %s (%s)",
                    decision.message, how)
            self.due.set()
            self.changed()

    def _refused(self, message: str) -> None:
        if message != self.reported:  # once, not at every look
            log.error("dnssec: %s; the keys in service go on signing", message)
        self.reported = message


def check_warnings(settings: Settings) -> list[str]:
    """For `dnsbalance check`: how the key folder stands against the cluster's keys, read-only; [] when it is a
    copy of them."""
    cluster, link = _link(settings)
    directory = settings.key_dir
    try:
        stored = read(link, cluster.prefix)
        local = key_folder.read(directory)
        decision = reconcile(local, key_folder.is_copy(directory, local), stored.files, here(directory),
                             there(cluster.prefix))
    except EtcdDown as exc:
        return [f"dnssec: the key folder cannot be compared with the cluster's keys: etcd cannot be reached ({exc})"]
    except KeyProblem as exc:
        return [f"dnssec: {exc}"]
    finally:
        link.close()
    if decision.action is Action.KEEP:
        return []
    if decision.action is Action.WRITE:
        return [f"dnssec: the key folder {directory} holds {describe(decision.local)}, the cluster's keys are "
                f"{describe(decision.cluster)}: the server makes its copy the cluster's at its start (a running one "
                f"within seconds), or now: `dnsbalance dnssec fetch`"]
    return [f"dnssec: {decision.message}"]
