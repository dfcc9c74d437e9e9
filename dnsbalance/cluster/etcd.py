"""The etcd client, bounded: etcd3gw (etcd's v3 JSON gateway over plain HTTP(S)) with a short timeout on every
request, several endpoints tried in turn, and every request and byte counted (the benchmark reads the counts).

Synchronous: member.py runs it on a thread of its own, never on the event loop. Every failure is EtcdDown,
whose message never holds a credential.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.lease import Lease

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
            with self.lock:
                self.traffic.requests += 1
                self.traffic.sent += len(body)
        with self.lock:
            self.traffic.received += len(response.content)
        return response


class EtcdLink:
    """Every endpoint of the cluster; the one that last answered is asked first."""

    def __init__(self, settings: ClusterSettings, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        self.traffic = Traffic()
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
        """`work(client)` on the endpoint that answered last, then the others; EtcdDown when none does."""
        errors = []
        for turn in range(len(self.clients)):
            index = (self.current + turn) % len(self.clients)
            client = self.clients[index]
            try:
                self._authenticate(client)
                result = work(client)
                self.current = index
                return result
            except (Etcd3Exception, requests.RequestException, ValueError, KeyError) as exc:
                errors.append(f"{self.settings.etcd[index]}: {type(exc).__name__}")
                if self.settings.user is not None:
                    client.session.headers.pop("Authorization", None)  # the token may have expired
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
        found = self._call("range", lambda c: c.get_prefix(prefix))
        return [(meta["key"].decode("utf-8", "replace") if isinstance(meta["key"], bytes) else str(meta["key"]),
                 value) for value, meta in found]

    def delete(self, key: str) -> bool:
        """True when the key was there."""
        return bool(self._call("delete", lambda c: c.delete(key)))

    def create(self, key: str, value: bytes) -> bool:
        return bool(self._call("create", lambda c: c.create(key, value)))

    def replace(self, key: str, old: bytes, new: bytes) -> bool:
        return bool(self._call("compare-and-swap", lambda c: c.replace(key, old, new)))

    def close(self) -> None:
        for client in self.clients:
            client.session.close()
