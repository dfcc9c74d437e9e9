"""Reading a stamp file over HTTP(S) or rsync, with one deadline for the whole exchange.

A hostile mirror cannot stall a cycle: the deadline covers connect, redirects, headers and body
(a slow drip is cut off), the body read stops at 64 KiB, and redirects are limited.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
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

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


def new_client(concurrency: int) -> httpx.AsyncClient:
    """One client for every probe: pooled connections, bounded; no proxies from the environment."""
    return httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # identity asked for; a server that compresses anyway is decoded as httpx decodes it, and the
        # cap then bounds what is held (a chunk inflates at most once before the read stops)
        headers={"User-Agent": USER_AGENT, "Cache-Control": "no-cache", "Accept-Encoding": "identity"},
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        trust_env=False,
        timeout=None,  # the caller's deadline covers the whole exchange
    )


async def fetch(client: httpx.AsyncClient, url: str, timeout: float) -> Fetched:
    if url.startswith("rsync://"):
        return await fetch_rsync(url, timeout)
    started = time.monotonic()
    status: int | None = None
    last_modified: str | None = None
    content_type: str | None = None
    encoding = "?"
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url) as response:
                status = response.status_code
                last_modified = response.headers.get("last-modified")
                content_type = response.headers.get("content-type")
                encoding = response.headers.get("content-encoding", "identity")
                if 200 <= status < 300:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= MAX_BODY:
                            del body[MAX_BODY:]
                            break  # leaving the block closes the connection; the rest is never read
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except TimeoutError:
        error = f"timeout after {timeout:g}s" + (f" (HTTP {status}, {len(body)} bytes read)" if status else "")
    except httpx.TooManyRedirects:
        error = f"more than {MAX_REDIRECTS} redirects"
    except httpx.DecodingError as exc:
        error = f"body cannot be decoded ({encoding}): {_reason(exc)}"
    except httpx.ConnectError as exc:
        error = f"cannot connect: {_reason(exc)}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {_reason(exc)}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Fetched(url, status, bytes(body), last_modified, time.monotonic() - started, error, content_type)


def _reason(exc: Exception) -> str:
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
