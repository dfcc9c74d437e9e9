"""The etcd client, bounded: etcd3gw (etcd's v3 JSON gateway over plain HTTP(S)) with a short timeout on every
request, several endpoints tried in turn, and every request and byte counted (the benchmark reads the counts).

Synchronous: member.py runs it on a thread of its own, never on the event loop. Every failure is EtcdDown,
whose message never holds a credential.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.lease import Lease
from etcd3gw.utils import _decode, _encode, _increment_last_byte

from dnsbalance.configuration.model import ClusterSettings


class EtcdDown(Exception):
    """No endpoint answered in time (or with quorum), or one refused the request."""


@dataclass
class Traffic:
    """Requests and bytes on the wire (bodies), since start."""

    requests: int = 0
    sent: int = 0
    received: int = 0


class CountingSession(requests.Session):
    def __init__(self, traffic: Traffic) -> None:
        super().__init__()
        self.traffic = traffic
        self.trust_env = False  # no proxy from the environment between a name server and its etcd
        self.lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        body = kwargs.get("data") or b""
        if kwargs.get("json") is not None:
            body = requests.models.complexjson.dumps(kwargs["json"])
        try:
            response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.count(1, len(body), 0)
        if not kwargs.get("stream"):  # a watch stream is counted by its reader, line by line
            self.count(0, 0, len(response.content))
        return response

    def count(self, requests: int, sent: int, received: int) -> None:
        with self.lock:
            self.traffic.requests += requests
            self.traffic.sent += sent
            self.traffic.received += received


class EtcdLink:
    """Every endpoint of the cluster; the one that last answered is asked first."""

    def __init__(self, settings: ClusterSettings, timeout: float, traffic: Traffic | None = None) -> None:
        self.settings = settings
        self.timeout = timeout
        self.traffic = traffic if traffic is not None else Traffic()  # shared by the member and its watch
        self.clients = [self._client(url) for url in settings.etcd]
        self.current = 0

    def _client(self, url: str) -> Etcd3Client:
        parts = urlsplit(url)
        session = CountingSession(self.traffic)
        if self.settings.ca is not None:
            session.verify = str(self.settings.ca)
        if self.settings.cert is not None and self.settings.key is not None:
            session.cert = (str(self.settings.cert), str(self.settings.key))
        # the v3 path is fixed (etcd 3.4 and later): no /version request before the first real one
        return Etcd3Client(parts.hostname or "", parts.port or 2379, parts.scheme, timeout=self.timeout,
                           api_path="/v3/", session=session)

    def _call(self, what: str, work: Any) -> Any:
        """`work(client)` on the endpoint that answered last, then the others; EtcdDown when none does. A
        refused token (etcd's simple tokens expire) is renewed once on the same endpoint."""
        errors = []
        for turn in range(len(self.clients)):
            index = (self.current + turn) % len(self.clients)
            client = self.clients[index]
            for attempt in (1, 2):
                try:
                    self._authenticate(client)
                    result = work(client)
                    self.current = index
                    return result
                except (Etcd3Exception, requests.RequestException, ValueError, KeyError) as exc:
                    if self.settings.user is not None:
                        client.session.headers.pop("Authorization", None)  # the token may have expired
                        if attempt == 1 and _token_refused(exc):
                            continue
                    errors.append(f"{self.settings.etcd[index]}: {_named(exc)}")
                    break
        raise EtcdDown(f"{what}: " + "; ".join(errors))

    def _authenticate(self, client: Etcd3Client) -> None:
        if self.settings.user is None or "Authorization" in client.session.headers:
            return
        reply = client.post(client.get_url("/auth/authenticate"),
                            json={"name": self.settings.user, "password": self.settings.password})
        client.session.headers["Authorization"] = str(reply["token"])

    def grant(self, ttl: int) -> int:
        return int(self._call("lease grant", lambda c: c.lease(ttl).id))

    def refresh(self, lease: int) -> bool:
        """False when the lease has expired (its keys are gone)."""
        return bool(self._call("lease keep-alive", lambda c: Lease(lease, c).refresh()) > 0)

    def put(self, key: str, value: bytes, lease: int | None = None) -> None:
        self._call("put", lambda c: c.put(key, value, lease=Lease(lease, c) if lease else None))

    def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """(key, value) of every key under the prefix, read with quorum (linearizable)."""
        return [(key, value) for key, value, _ in self.range(prefix)[1]]

    def range(self, prefix: str) -> tuple[int, list[tuple[str, bytes, int]]]:
        """The revision of the read, and (key, value, mod revision) of every key under the prefix."""
        request = {"key": _encode(prefix), "range_end": _encode(_increment_last_byte(prefix))}
        reply = self._call("range", lambda c: c.post(c.get_url("/kv/range"), json=request))
        found = [(_text(_decode(kv["key"])), _decode(kv.get("value", "")), int(kv.get("mod_revision", 0)))
                 for kv in reply.get("kvs", [])]
        return int(reply["header"]["revision"]), found

    def watch(self, prefix: str, start: int, read_timeout: float) -> tuple[requests.Response, "Iterator[bytes]"]:
        """A watch stream of every change under the prefix from revision `start`: the response (to close) and its
        lines. Each read waits at most `read_timeout`. The stream is cut by etcd when its member loses the
        cluster's leader (the gateway passes `hasleader` on), so a member cut off from the others is noticed."""
        request = {"create_request": {"key": _encode(prefix), "range_end": _encode(_increment_last_byte(prefix)),
                                      "start_revision": start}}

        def open_stream(client: Etcd3Client) -> tuple[requests.Response, CountingSession]:
            response = client.session.post(client.get_url("/watch"), json=request, stream=True,
                                           timeout=(self.timeout, read_timeout),
                                           headers={"Grpc-Metadata-hasleader": "true"})
            if response.status_code != 200:
                response.close()
                raise Etcd3Exception(f"HTTP {response.status_code}")
            return response, client.session

        response, session = self._call("watch", open_stream)
        return response, _counted(response.iter_lines(), session)

    def forget_tokens(self) -> None:
        """After a watch etcd cancelled (an expired token cancels it): authenticate again at the next request."""
        for client in self.clients:
            client.session.headers.pop("Authorization", None)

    def revoke(self, lease: int) -> None:
        """Ends the lease now: the keys under it go at once (an instance leaving on purpose)."""
        self._call("lease revoke", lambda c: Lease(lease, c).revoke())

    def delete(self, key: str) -> bool:
        """True when the key was there."""
        return bool(self._call("delete", lambda c: c.delete(key)))

    def create(self, key: str, value: bytes) -> bool:
        return bool(self._call("create", lambda c: c.create(key, value)))

    def replace(self, key: str, old: bytes, new: bytes) -> bool:
        return bool(self._call("compare-and-swap", lambda c: c.replace(key, old, new)))

    def transaction(self, expected: Mapping[str, int], puts: Mapping[str, bytes], deletes: Iterable[str]) -> bool:
        """One transaction: when every key of `expected` is at that mod revision (0: absent), put and delete
        (each key at most once); True when it did, False when a key had moved (nothing changed then)."""
        request = {"compare": [{"key": _encode(key), "result": "EQUAL", "target": "MOD", "mod_revision": revision}
                               for key, revision in expected.items()],
                   "success": [*({"request_put": {"key": _encode(key), "value": _encode(value)}}
                                 for key, value in puts.items()),
                               *({"request_delete_range": {"key": _encode(key)}} for key in deletes)],
                   "failure": []}
        reply = self._call("transaction", lambda c: c.post(c.get_url("/kv/txn"), json=request))
        return bool(reply.get("succeeded", False))

    def close(self) -> None:
        for client in self.clients:
            client.session.close()


def _text(key: bytes) -> str:
    return key.decode("utf-8", "replace")


def _counted(lines: Iterator[bytes], session: CountingSession) -> Iterator[bytes]:
    for line in lines:
        session.count(0, 0, len(line) + 1)
        yield line


def _named(exc: Exception) -> str:
    """What went wrong, without anything a reply or a URL may hold: the exception's type, and etcd's gRPC code."""
    if isinstance(exc, Etcd3Exception):
        try:
            code = json.loads(exc.detail_text).get("code") if exc.detail_text else None  # type: ignore[attr-defined]
        except (ValueError, AttributeError, TypeError):
            code = None
        return f"{type(exc).__name__}" + (f" (gRPC code {code})" if isinstance(code, int) else "")
    return type(exc).__name__


def _token_refused(exc: Exception) -> bool:
    """etcd refused the token (expired, or the auth store moved on): gRPC code 16, unauthenticated, or 3 with
    'invalid auth token'."""
    text = str(getattr(exc, "detail_text", "") or "")
    return "auth token" in text or '"code":16' in text.replace(" ", "")
