"""Every kind of check a health cycle runs, in one list. A new kind (per address, virtual host, TLS certificate)
is one module here, after health/checks/base.py's `Check`, and one line in CHECKS."""
from __future__ import annotations

from typing import Any

from dnsbalance.health.checks import ftpsync_lock, master_stamp, mirror_stamp, relay_service, served
from dnsbalance.health.checks.base import Check

CHECKS: tuple[Check[Any], ...] = (
    master_stamp.CHECK,
    mirror_stamp.CHECK,
    ftpsync_lock.CHECK,
    relay_service.CHECK,
    served.CHECK,
)
