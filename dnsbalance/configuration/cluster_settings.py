"""Read `cluster:` of dnsbalance.yaml: the etcd endpoints several name servers share their view through.

    cluster:
      etcd: [https://ns1.example.org:2379, https://ns2.example.org:2379, https://ns3.example.org:2379]
      instance: ns1            # default: this host's name
      down_quorum: majority    # or all, or a number of vantage points
      ca: etcd-ca.pem          # TLS (optional): etcd's CA, and a client certificate and key
      cert: ns1.pem
      key: ns1-key.pem
      user: dnsbalance         # etcd authentication (optional)
      password: ...
      prefix: /dnsbalance/cdn.example.org/
      instances: [ns1, ns2, ns3]   # optional: only these names' votes count (others are ignored, and shown)
      watch: true              # follow the others' votes as they arrive (false: read them at each cycle only)
"""
from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from dnsbalance.configuration.checker import Checker, brief
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.configuration.yamlpos import PosDict, PosList

KEYS = ("etcd", "instance", "down_quorum", "prefix", "ca", "cert", "key", "user", "password", "instances", "watch")
INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # a key part: no '/', short, printable


def endpoint_ok(text: str) -> bool:
    try:
        parts = urlsplit(text)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port is not None \
            and parts.path in ("", "/") and not parts.username and not parts.password
    except ValueError:
        return False


def default_instance() -> str:
    """The host's short name, as a key part."""
    name = socket.gethostname().split(".")[0]
    return name if INSTANCE.match(name) else "dnsbalance"


def read_cluster(check: Checker, top: PosDict, path: Path, zone: str, base: Path) -> ClusterSettings | None:
    """The `cluster:` section, or None without one (one instance, its own verdicts)."""
    c_map = check.section(top, "cluster", path)
    if c_map is None:
        return None
    what = "cluster"
    check.known_keys(c_map, KEYS, path, what)
    endpoints: list[str] = []
    items = c_map.get("etcd")
    if not isinstance(items, PosList) or not items:
        check.error(path, c_map.line_of("etcd") if "etcd" in c_map else c_map.line,
                    "cluster: etcd must be a non-empty list of endpoint URLs (http(s)://HOST:PORT)")
    else:
        for index, item in enumerate(items):
            if not isinstance(item, str) or not endpoint_ok(item):
                shown = "with credentials in it" if isinstance(item, str) and "@" in item else brief(item)
                check.error(path, items.line_of(index), f"cluster: etcd endpoint {shown} must be "
                                                        "http(s)://HOST:PORT (credentials go in user/password)")
            else:
                endpoints.append(item.rstrip("/"))
    instance = check.string(c_map, "instance", path, what, None, lambda s: bool(INSTANCE.match(s)),
                            "a name of letters, digits, '.', '_' or '-' (at most 63)") or default_instance()
    prefix = check.string(c_map, "prefix", path, what, f"/dnsbalance/{zone}/",
                          lambda s: s.startswith("/") and s.endswith("/") and len(s) < 200,
                          "a key prefix starting and ending with '/'")
    files: dict[str, Path | None] = {}
    for key in ("ca", "cert", "key"):
        name = check.string(c_map, key, path, what, None)
        files[key] = base / name if name is not None else None
        if name is not None and not (base / name).is_file():
            check.error(path, c_map.line_of(key), f"cluster: {key} file {brief(name)} does not exist")
    if (files["cert"] is None) != (files["key"] is None):
        check.error(path, c_map.line, "cluster: cert and key go together (a client certificate and its key)")
    if any(files.values()) and endpoints and not all(e.startswith("https://") for e in endpoints):
        check.error(path, c_map.line_of("etcd"), "cluster: with ca/cert/key every etcd endpoint must be https://")
    user = check.string(c_map, "user", path, what, None)
    password = None
    if "password" in c_map:  # never repeated in a message: only its line
        value = c_map["password"]
        if not isinstance(value, str) or not value:
            check.error(path, c_map.line_of("password"), "cluster: password must be a non-empty string")
        else:
            password = value
    if (user is None) != (password is None):
        check.error(path, c_map.line, "cluster: user and password go together")
    instances = _instances(check, c_map, path, instance)
    watch = c_map.get("watch", True)
    if not isinstance(watch, bool):
        check.error(path, c_map.line_of("watch"), f"cluster: watch must be true or false, got {brief(watch)}")
        watch = True
    return ClusterSettings(tuple(endpoints), instance, prefix, _down_quorum(check, c_map, path), files["ca"],
                           files["cert"], files["key"], user, password, instances, watch)


def _instances(check: Checker, c_map: PosDict, path: Path, instance: str) -> tuple[str, ...]:
    """The allow-list of instance names: () when absent (any name counts)."""
    if "instances" not in c_map:
        return ()
    items = c_map["instances"]
    if not isinstance(items, PosList) or not items:
        check.error(path, c_map.line_of("instances"), "cluster: instances must be a non-empty list of instance "
                                                      "names (the name servers whose votes count)")
        return ()
    names: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not INSTANCE.match(item):
            check.error(path, items.line_of(index), f"cluster: instances: {brief(item)} is not an instance name "
                                                    "(letters, digits, '.', '_' or '-', at most 63)")
        elif item in names:
            check.error(path, items.line_of(index), f"cluster: instances: {item} is listed twice")
        else:
            names.append(item)
    if names and instance not in names:
        check.error(path, c_map.line_of("instances"), f"cluster: this instance, {instance}, is not in "
                                                      f"instances ({', '.join(names)}): its own vote would not count")
    return tuple(sorted(names))


def _down_quorum(check: Checker, c_map: PosDict, path: Path) -> int | str:
    if "down_quorum" not in c_map:
        return "majority"
    value = c_map["down_quorum"]
    if value in ("majority", "all") or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 99):
        return value
    check.error(path, c_map.line_of("down_quorum"),
                f"cluster: down_quorum must be majority, all or a number 1..99, got {brief(value)}")
    return "majority"
