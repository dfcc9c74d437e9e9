"""Stamp parsing and freshness, pure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dnsbalance.health.stamp import Stamp, freshness, parse_stamp
from tests.mirrors import BASE, trace


def test_parse_trace_file() -> None:
    stamp = parse_stamp(trace(2026112101, BASE))
    assert stamp.serial == "2026112101"
    assert stamp.date == BASE


def test_parse_space_padded_day_and_last_modified() -> None:
    early = datetime(2026, 11, 1, 3, 4, 5, tzinfo=timezone.utc)
    stamp = parse_stamp(b"Sun Nov  1 03:04:05 UTC 2026\n", "Sun, 01 Nov 2026 03:04:05 GMT")
    assert stamp.serial is None and stamp.date == early and stamp.last_modified == early


def test_parse_garbage() -> None:
    assert parse_stamp(b"\xff\xfe<html>nope</html>") == Stamp()


MASTER = Stamp("2026112102", BASE)


def test_identical_serial_is_fresh() -> None:
    assert freshness(Stamp("2026112102", BASE), MASTER, 0).fresh


def test_older_serial_is_stale_with_its_lag() -> None:
    result = freshness(Stamp("2026112101", BASE - timedelta(hours=6)), MASTER, 0)
    assert not result.fresh and result.lag == 6 * 3600
    assert result.reason == "stale: serial 2026112101, master has 2026112102"


def test_max_lag_allows_a_bounded_lag() -> None:
    behind = Stamp("2026112101", BASE - timedelta(hours=6))
    assert freshness(behind, MASTER, 6 * 3600).fresh
    assert not freshness(behind, MASTER, 6 * 3600 - 1).fresh


def test_ahead_of_master_is_fresh() -> None:
    result = freshness(Stamp("2026112103", BASE + timedelta(hours=6)), MASTER, 0)
    assert result.fresh and "ahead of master" in result.reason


def test_falls_back_to_date_then_last_modified() -> None:
    assert freshness(Stamp(None, BASE), Stamp(None, BASE), 0).fresh
    assert not freshness(Stamp(None, BASE - timedelta(seconds=1)), Stamp(None, BASE), 0).fresh
    lm = Stamp(None, None, BASE)
    assert freshness(lm, lm, 0).fresh
    assert not freshness(Stamp(None, None, BASE - timedelta(minutes=5)), lm, 0).fresh


def test_nothing_to_compare_is_stale() -> None:
    result = freshness(Stamp(), MASTER, 3600)
    assert not result.fresh and "no serial, date or Last-Modified" in result.reason
