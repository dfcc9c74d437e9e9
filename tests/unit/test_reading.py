"""configuration/reading.py: regular files only, bounded, a folder within a deadline (issue 22 items 2, 3)."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from dnsbalance import files
from dnsbalance.configuration import reading
from dnsbalance.configuration.reading import Abandoned, ReadTimeout, Refused, read_all, read_file


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "JP.yaml"
    path.write_bytes(b"deb:\n  jp1: 10\n" * 100_000)  # 1.5 MB: more than one read
    assert read_file(path) == path.read_bytes()


def test_a_sparse_file_past_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "JP.yaml"
    with path.open("wb") as handle:
        handle.truncate(reading.MAX_FILE_BYTES + 1)
    with pytest.raises(Refused, match="larger than 16 MiB"):
        read_file(path)


@pytest.mark.parametrize("kind, target", [("a character device", "/dev/zero"), ("a directory", "/")])
def test_what_a_symbolic_link_points_at_counts(tmp_path: Path, kind: str, target: str) -> None:
    path = tmp_path / "JP.yaml"
    path.symlink_to(target)
    with pytest.raises(Refused, match=f"not read: {kind}"):
        read_file(path)


def test_fifo_socket_loop_and_nothing(tmp_path: Path) -> None:
    fifo, sock, loop, dangling = (tmp_path / n for n in ("fifo.yaml", "sock.yaml", "loop.yaml", "gone.yaml"))
    os.mkfifo(fifo)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sock))
    loop.symlink_to(loop.name)
    dangling.symlink_to("nowhere.yaml")
    for path, message in ((fifo, r"a FIFO \(named pipe\)"), (sock, "a socket"), (loop, "a symbolic link loop"),
                          (dangling, "a dangling symbolic link")):
        with pytest.raises(Refused, match=f"not read: {message}"):
            read_file(path)
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "missing.yaml")


def test_a_fifo_swapped_in_after_the_stat_is_not_waited_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path checked as a regular file, then replaced by a FIFO before the open: the open does not block
    (O_NONBLOCK) and the opened descriptor is refused."""
    fifo = tmp_path / "JP.yaml"
    os.mkfifo(fifo)
    monkeypatch.setattr(files, "not_a_file", lambda path: None)  # the stat saw the regular file
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            read_file(fifo)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the test reports it
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(2)
    assert not thread.is_alive(), "blocked opening a FIFO"
    assert len(outcome) == 1 and isinstance(outcome[0], Refused), outcome
    assert "a FIFO" in str(outcome[0])


def test_a_folder_read_that_does_not_finish_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that does not answer cannot be made on loopback: a read that sleeps stands for it."""
    stuck = tmp_path / "country" / "JP.yaml"
    release = threading.Event()

    def slow(path: Path, limit: int = 0) -> bytes:
        release.wait(30)
        return b""

    monkeypatch.setattr(reading, "read_file", slow)
    started = time.monotonic()
    try:
        with pytest.raises(ReadTimeout) as raised:
            read_all(tmp_path, [stuck], timeout=0.3)
        assert raised.value.path == stuck
        assert time.monotonic() - started < 1.5

        started = time.monotonic()
        threading.Timer(0.2, reading.stop_reading).start()
        with pytest.raises(Abandoned):
            read_all(tmp_path, [stuck], timeout=30)
        assert time.monotonic() - started < 1.5
    finally:
        reading._stopping.clear()
        release.set()


def test_a_folder_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    os.mkfifo(tmp_path / "b.yaml")
    files = read_all(tmp_path, [tmp_path / "a.yaml", tmp_path / "b.yaml"])
    (tmp_path / "a.yaml").write_text("changed: 2\n")
    assert files.read(tmp_path / "a.yaml") == b"a: 1\n"
    assert files.contents() == {"a.yaml": b"a: 1\n"}
    with pytest.raises(Refused):
        files.read(tmp_path / "b.yaml")
