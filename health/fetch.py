"""Reading a stamp file over HTTP(S) or rsync, with one deadline for the whole exchange.

A hostile mirror cannot stall a cycle: the deadline covers connect, redirects, headers and body
(a slow drip is cut off), the body read stops at 64 KiB, and redirects are limited. Nor can it fill the
prober's memory: a compressed body is inflated here, bounded as it is produced, never a network chunk whole
(a gzip bomb inflates 1000 to 1); a body that goes past the cap without declaring its length, or inflates
past it, is no trace file and an error.
"""
from __future__ import annotations

import asyncio
import functools
import os
import shutil
import ssl
import tempfile
import time
import zlib
from dataclasses import dataclass

import httpx

from dnsbalance import __version__

MAX_BODY = 64 * 1024
MAX_REDIRECTS = 5
USER_AGENT = f"dnsbalance/{__version__} (mirror health check)"


@dataclass(frozen=True)
class Fetched:
    """What one GET of a stamp URL gave: a status and the start of the body, or an error."""

    url: str
    status: int | None
    body: bytes
    last_modified: str | None
    latency: float  # seconds
    error: str | None = None
    content_type: str | None = None
    oversize: bool = False  # more than MAX_BODY without a declared length, or inflated past it: not a trace
    expires: float | None = None  # https: when the server's certificate expires (unix time)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@functools.cache
def tls_context(ca: str | None) -> ssl.SSLContext:
    """The system's (certifi's) trust, and `ca` beside it when a mirror's certificates come from a private CA."""
    context = httpx.create_ssl_context()
    if ca:
        context.load_verify_locations(cafile=ca)
    return context


def new_client(concurrency: int, ca: str | None = None, source: str | None = None) -> httpx.AsyncClient:
    """One client for every probe: pooled connections, bounded; no proxies from the environment.
    `source`: the local address probes leave from (health.source)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(local_address=source, limits=limits, retries=0, verify=tls_context(ca)) \
        if source else None
    return httpx.AsyncClient(
        transport=transport,
        verify=tls_context(ca),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # identity asked for; a server that compresses anyway is inflated by fetch(), under the cap
        headers={"User-Agent": USER_AGENT, "Cache-Control": "no-cache", "Accept-Encoding": "identity"},
        limits=limits,
        trust_env=False,
        timeout=None,  # the caller's deadline covers the whole exchange
    )


class Inflater:
    """gzip or deflate, inflated at most `limit` bytes at a time, whatever a network chunk holds."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: the gzip wrapper; deflate: zlib-wrapped as RFC 9110 says, raw deflate as some servers send
        self.wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self.inflater = zlib.decompressobj(self.wbits)
        self.started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        """Up to `limit` bytes of what `data` inflates to; input past that is dropped (the read stops)."""
        out = bytearray()
        while data and len(out) < limit:
            try:
                out += self.inflater.decompress(data, limit - len(out))
            except zlib.error:
                if self.started or self.wbits != zlib.MAX_WBITS:
                    raise
                self.wbits = -zlib.MAX_WBITS  # no zlib header: raw deflate
                self.inflater = zlib.decompressobj(self.wbits)
                continue
            self.started = True
            if self.inflater.eof:  # another gzip member may follow
                data = self.inflater.unused_data
                self.inflater = zlib.decompressobj(self.wbits)
            else:
                data = self.inflater.unconsumed_tail
        return bytes(out)


class Undecodable(ValueError):
    """A Content-Encoding this prober does not inflate."""


def inflater(encoding: str) -> Inflater | None:
    """None for a body sent as it is; Undecodable for an encoding this prober cannot bound."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return Inflater(encoding)
    raise Undecodable("not supported (identity was asked for)")


async def fetch(client: httpx.AsyncClient, url: str, timeout: float, host: str | None = None) -> Fetched:
    """`host`: sent as the HTTP Host, and as TLS SNI (the certificate must be valid for it), instead of the
    URL's host: how a probe connects to one address of a mirror and asks for the name apt asks for."""
    if url.startswith("rsync://"):
        return await fetch_rsync(url, timeout)
    started = time.monotonic()
    status: int | None = None
    last_modified: str | None = None
    content_type: str | None = None
    encoding = "?"
    body = bytearray()
    received = 0
    oversize = False
    expires: float | None = None
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, headers={"Host": host} if host else None,
                                     extensions={"sni_hostname": host} if host else None) as response:
                status = response.status_code
                expires = _expiry(response)
                last_modified = response.headers.get("last-modified")
                content_type = response.headers.get("content-type")
                encoding = response.headers.get("content-encoding", "identity")
                declared = response.headers.get("content-length") is not None
                if 200 <= status < 300:
                    decoder = inflater(encoding)
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        body += decoder.feed(chunk, MAX_BODY + 1 - len(body)) if decoder else chunk
                        if len(body) > MAX_BODY:
                            # a declared file's start is judged; an endless or inflating stream is not a file
                            oversize = decoder is not None or not declared
                            del body[MAX_BODY:]
                            break  # leaving the block closes the connection; the rest is never read
        error = None if 200 <= status < 300 else f"HTTP {status}"
        if oversize:
            error = (f"body inflates past {MAX_BODY} bytes ({encoding}, {received} bytes received): not a trace file"
                     if encoding != "identity" else
                     f"body longer than {MAX_BODY} bytes and no length declared: not a trace file")
    except TimeoutError:
        error = f"timeout after {timeout:g}s" + (f" (HTTP {status}, {len(body)} bytes read)" if status else "")
    except httpx.TooManyRedirects:
        error = f"more than {MAX_REDIRECTS} redirects"
    except (Undecodable, zlib.error) as exc:
        error = f"body cannot be decoded ({encoding}): {exc}"
    except httpx.DecodingError as exc:
        error = f"body cannot be decoded ({encoding}): {_reason(exc)}"
    except httpx.ConnectError as exc:
        error = f"{_redirected(exc, url)}cannot connect: {_refusal(exc)}"
    except httpx.HTTPError as exc:
        error = f"{_redirected(exc, url)}{type(exc).__name__}: {_reason(exc)}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Fetched(url, status, bytes(body), last_modified, time.monotonic() - started, error, content_type,
                   oversize, expires)


def _expiry(response: httpx.Response) -> float | None:
    """The peer certificate's notAfter, for an https response (None for http)."""
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        return None
    certificate = tls.getpeercert()
    after = certificate.get("notAfter") if certificate else None
    return ssl.cert_time_to_seconds(after) if isinstance(after, str) else None


def _redirected(exc: httpx.HTTPError, url: str) -> str:
    """`redirected to URL: ` when the request that failed is not the one asked for (a redirect's target)."""
    try:
        failed = str(exc.request.url)
    except RuntimeError:  # an error raised before any request was made
        return ""
    return f"redirected to {failed}: " if failed != url else ""


def _refusal(exc: BaseException) -> str:
    """httpx's words for a failed connect, and the operating system's beneath them when they say more
    (`All connection attempts failed (Connection refused)`)."""
    said = _reason(exc)
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno:
            cause = os.strerror(seen.errno)
            return said if cause in said else f"{said} ({cause})"
        seen = seen.__cause__ or seen.__context__
    return said


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text


async def fetch_rsync(url: str, timeout: float) -> Fetched:
    """rsync:// stamps, read with the rsync client under the same deadline and size cap."""
    started = time.monotonic()
    rsync = shutil.which("rsync")
    if rsync is None:
        return Fetched(url, None, b"", None, 0.0, "rsync client not installed")
    with tempfile.TemporaryDirectory(prefix="dnsbalance-rsync-") as folder:
        target = os.path.join(folder, "stamp")
        seconds = max(1, int(timeout + 0.999))
        process = await asyncio.create_subprocess_exec(
            rsync, "--quiet", "--no-motd", f"--timeout={seconds}", f"--contimeout={seconds}",
            f"--max-size={MAX_BODY}", url, target,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout):
                _, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            return Fetched(url, None, b"", None, time.monotonic() - started, f"timeout after {timeout:g}s")
        latency = time.monotonic() - started
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip().splitlines()
            return Fetched(url, None, b"", None, latency,
                           f"rsync exit {process.returncode}: {detail[0] if detail else ''}".strip())
        if not os.path.exists(target):
            return Fetched(url, None, b"", None, latency, f"rsync: stamp larger than {MAX_BODY} bytes or missing")
        return Fetched(url, 200, await asyncio.to_thread(_head, target), None, latency)


def _head(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MAX_BODY)
