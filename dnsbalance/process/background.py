"""Table builds off the event loop, in threads a stop does not wait for.

asyncio.to_thread runs on the loop's default executor, which asyncio.run joins at the end, and the interpreter
joins its threads at exit: a SIGTERM that came during the build of a big (or big and signed) configuration
waited for the build to finish, tens of seconds. A build's result is of no use to a server that stops, and
what a build writes is written whole (a new file renamed over the old), so a build is run here in a daemon
thread, which the stop leaves behind.
"""
from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_build_thread(function: Callable[..., T], *args: object) -> T:
    """function(*args) in a new daemon thread, awaited like asyncio.to_thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = context.run(function, *args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: the server stopped while this was building

    threading.Thread(target=run, name=f"build-{getattr(function, '__name__', 'work')}", daemon=True).start()
    return await future
