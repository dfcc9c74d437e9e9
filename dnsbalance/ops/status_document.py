"""The shape of the status document (`/status.json`, the status page, the metrics): named fields for each
part. TypedDicts, because the JSON shape is the contract that pages, scripts and tests read."""
from __future__ import annotations

from typing import Any, TypedDict, final

Span = list[Any]  # [from, to, "up" | "down" | "drained" | "unknown"]: a stretch of one health key's history


class DrainRow(TypedDict):
    """An operator's drain (`dnsbalance drain`): out of every answer, whatever the health checks say."""

    by: str
    reason: str
    since: float
    until: float | None


class HealthFields(TypedDict):
    """A health key's verdict, as every row that shows one carries it. (The rows are final, so that a page
    can tell a relay's from a mirror's by their keys.)"""

    up: bool
    reason: str
    lag: float | None
    since: float | None
    checked: float | None


@final
class ArchiveRow(HealthFields):
    """One archive a mirror carries, and its health there."""

    archive: str
    key: str
    url: str
    status: str  # up, syncing, down, pending: what the table builder made of it
    state: str  # one word of SEVERITY
    latency: float | None
    stamp: str | None
    reference: str | None
    history: list[Span]


@final
class MirrorRow(TypedDict):
    name: str
    addresses: list[str]
    url: str | None
    admin_state: str
    usable: bool
    state: str
    up: bool
    reason: str
    since: float | None
    checked: float | None
    lag: float | None
    last_status: int | None
    last_latency: float | None
    last_error: str | None
    stamp: str | None
    history: list[Span]
    archives: list[ArchiveRow]
    drain: DrainRow | None


@final
class RelayRow(HealthFields):
    name: str
    service: str
    port: int | None
    addresses: list[str]
    admin_state: str
    usable: bool
    state: str
    last_latency: float | None
    last_error: str | None
    history: list[Span]
    drain: DrainRow | None


class RegionLine(TypedDict):
    """One region in the summary: its pools, what falls back, the mirrors it lost, its recent answers."""

    region: str
    selects: str
    pool_count: int
    falls_back: list[str]
    lost: list[str]
    recent_first_answers: int
    problem: bool


class EntryRow(TypedDict):
    """One entry a pool draws from, with its configured, delivered and observed shares."""

    target: str
    weight: int
    configured_share: float
    delivered_share: float
    observed_share: float | None
    recent_observed_share: float | None
    observed_share_since_change: float | None
    answers: int
    addresses: list[str]
    port: int | None
    tier: int
    state: str


class LostRow(TypedDict):
    """A configured entry a pool does not draw from now, and why."""

    target: str
    state: str
    reason: str
    since: float | None


class PoolRow(TypedDict):
    name: str
    type: str
    fail_open: bool
    first_answers: int
    recent_first_answers: int
    changed_at: float | None
    first_answers_since_change: int
    entries: list[EntryRow]
    lost: list[LostRow]


class RegionDetail(TypedDict):
    region: str
    selects: str
    pools: list[PoolRow]


class HealthSettings(TypedDict):
    enabled: bool
    interval: float
    fall: int
    rise: int
    history_seconds: int


class LastCycle(TypedDict):
    started: float
    duration: float
    master: str
    kept_previous: list[str]
    warnings: list[str]  # what asks an operator to act: no route to served addresses, lock names never confirmed


class SharesNote(TypedDict):
    configured: str
    observed_since: float | None
    recent_window_seconds: float


class Queries(TypedDict):
    total: int
    no_country_share: float | None
    ecs: int
    unique_clients: int


class GeoipInUse(TypedDict):
    path: str
    type: str
    origin: str
    description: str


class ConfigurationOnDisk(TypedDict):
    directory: str
    files_differ: bool
    auto_apply: bool


class InstanceInfo(TypedDict):
    """Which running server a page belongs to (several on one host all default to the same status port)."""

    zone: str
    config: str  # the configuration folder, absolute
    state_dir: str
    listen: list[str]  # DNS addresses as bound
    status: str | None  # the status page's address as bound
    pid: int
    name: str | None  # with `cluster:`, this instance's name among the others
    started: float


class ServedInputs(TypedDict, total=False):
    """What the serving snapshot adds about itself: the GeoIP database in use, the files on disk, which
    instance serves it."""

    instance: InstanceInfo

    geoip: GeoipInUse
    configuration: ConfigurationOnDisk
    cluster: dict[str, Any] | None  # several name servers: ClusterView.as_json() (dnsbalance/cluster/view.py)


class DnssecKey(TypedDict):
    tag: int
    algorithm: int
    role: str  # "signing", "next" (published ahead of a rollover) or "retiring" (published after one)


class DnssecState(TypedDict):
    """The zone's signing state (public facts only: never a key)."""

    key_tag: int  # the key that signs
    algorithm: int
    algorithm_name: str
    keys: list[DnssecKey]  # every DNSKEY published
    inception: int
    earliest_expiry: int
    refresh_at: float  # when the signatures are made anew (the supervisor looks every few minutes from then)
    signatures_made: int  # for the table in service (the rest were reused from the generation before)
    rrsets_signed: int
    signing_seconds: float
    # "cluster": the key folder is a copy of the cluster's keys in etcd; "local": the key folder's own
    source: str
    engine: str  # what signed: "libcrypto" (the C extension's batches) or "cryptography" (built without it)


class OperationRow(TypedDict):
    """One operator's action from `state_dir/operations.jsonl`: drain, undrain, reload, configuration."""

    time: float
    kind: str
    key: str
    ok: bool  # a reload applied (False: refused); an undrain (False: a drain)
    by: str
    reason: str


class Summary(ServedInputs):
    """The whole balancer in one small document."""

    zone: str
    generation: int
    udp_fast_path: dict[str, str]  # {"path": "native" or "python", "why": ...} (answer/native.py)
    table_age_seconds: float
    now: float
    fail_open: list[str]
    health: HealthSettings
    last_cycle: LastCycle | None
    states: dict[str, int]
    mirrors: list[MirrorRow]
    relays: list[RelayRow]
    shares: SharesNote
    regions: list[RegionLine]
    region_pages: int
    queries: Queries
    reloads: dict[str, int]
    dnssec: DnssecState | None  # None: the zone is not signed
    assessment: dict[str, Any]  # the monitoring verdict: Assessment.as_json() (ops/monitoring.py)
    operations: list[OperationRow]  # the operators' latest actions in the history window, newest first
