"""The table records why: the entries each pool leaves out and their reasons, the tables a region's clients go
through, every health key's judgement; and `explain`, `plan` and the status document tell what these records
say."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.configuration.model import DEFAULT_REGION, Config, Level, Region
from dnsbalance.geo.locate import Location
from dnsbalance.ops.explain import explain
from dnsbalance.ops.plan import served
from dnsbalance.ops.status import StatusInputs, region_details, region_summaries, summary
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table
from dnsbalance.ranking.chains import chain_of
from dnsbalance.ranking.pool import Judgement, LeftOut, Tried, Why
from dnsbalance.stats.counters import Totals
from dnsbalance.health.state import HealthState, MirrorHealth
from dnsbalance.health.view import HealthView

JP = Location("JP", "AS", 20)
KR, AS = Region(Level.COUNTRY, "KR"), Region(Level.CONTINENT, "AS")


def configured(config_dir: Path) -> Config:
    """The test zone with every mirror probed (so one never judged is pending) and jp4 down by its operator."""
    path = config_dir / "mirrors.yaml"
    text = re.sub(r"\}$", ", url: 'http://127.0.0.1:9/debian/'}", path.read_text(), flags=re.MULTILINE)
    path.write_text(text.replace("jp4: {addresses: [192.0.2.4]", "jp4: {addresses: [192.0.2.4], state: down"))
    return load_config(config_dir)


# jp2 mid-sync (the rest carry the region), jp3, de1, de2, def1 and v6only down, as2 never judged (pending)
HEALTH = HealthView(MappingProxyType({
    "jp1": True, "jp2": True, "jp3": False, "jp4": True, "jpdrained": True, "as1": True, "eu1": True, "eu2": True,
    "de1": False, "de2": False, "kr1": True, "def1": False, "def2": True, "v6only": False}), frozenset({"jp2"}))


@pytest.fixture
def table(config_dir: Path) -> ActiveTable:
    return build_table(configured(config_dir), HEALTH, 1, 1)


def left_out(table: ActiveTable, tier: str, name: str, rtype: RType) -> list[tuple[str, Why, str]]:
    found = dict(table.labelled_tiers())[tier].left_out.get((name, rtype), ())
    return [(left.target, left.why, left.key) for left in found]


def test_each_pool_records_the_entries_it_left_out_and_why(table: ActiveTable) -> None:
    assert left_out(table, "country JP", "deb", RType.A) == [  # in the table's order
        ("jp2", Why.SYNCING, "jp2"), ("jp3", Why.DOWN, "jp3"), ("jp4", Why.OPERATOR_DOWN, "jp4"),
        ("jpdrained", Why.DRAINED, "jpdrained")]
    assert [c.name for c in table.countries["JP"].usable[("deb", RType.A)].candidates] == ["jp1"]
    # only jp1 and jp2 have IPv6: the others are no entry of the AAAA pool at all
    assert left_out(table, "country JP", "deb", RType.AAAA) == [("jp2", Why.SYNCING, "jp2")]
    assert left_out(table, "continent AS", "deb", RType.A) == [("as2", Why.PENDING, "as2")]
    assert left_out(table, "default", "deb", RType.A) == [("def1", Why.DOWN, "def1")]
    assert left_out(table, "continent EU", "deb", RType.A) == []  # nothing left out: nothing recorded
    assert ("deb", RType.A) not in table.continents["EU"].left_out


def test_a_fail_open_pool_records_every_entry_as_left_out(table: ActiveTable) -> None:
    """Nothing is usable for the apex: the default table serves its configured entries regardless."""
    assert table.default.fail_open[("@", RType.A)].fail_open
    assert left_out(table, "default", "@", RType.A) == [("def1", Why.DOWN, "def1")]


def test_reason_records_are_shared_between_pools(table: ActiveTable) -> None:
    """A big table leaves the same down mirror out of thousands of pools: one record serves them all."""
    apex = table.default.left_out[("@", RType.A)][0]
    deb = table.default.left_out[("deb", RType.A)][0]
    assert apex is deb and apex == LeftOut("def1", Why.DOWN, "def1")


def test_every_health_key_is_judged_once(table: ActiveTable) -> None:
    assert table.judged["jp1"] is Judgement.UP
    assert table.judged["jp2"] is Judgement.SYNCING
    assert table.judged["jp3"] is Judgement.DOWN
    assert table.judged["jp4"] is Judgement.OPERATOR_DOWN
    assert table.judged["as2"] is Judgement.PENDING
    assert {j.status.value for j in table.judged.values()} <= {"up", "syncing", "down", "pending"}


def test_chains_record_the_tables_tried(table: ActiveTable) -> None:
    # both German mirrors down: Germany's clients are served by Europe's
    assert table.countries["DE"].chains[("deb", RType.A)] == (
        (Region(Level.COUNTRY, "DE"), Tried.UNUSABLE), (Region(Level.CONTINENT, "EU"), Tried.SERVED))
    # KR lists only v6only, which is down: its clients go on to Asia (no IPv6 entry), then the default table,
    # whose one IPv6 mirror is down too: the widest table fails open
    assert table.countries["KR"].chains[("deb", RType.AAAA)] == (
        (KR, Tried.UNUSABLE), (AS, Tried.UNLISTED), (DEFAULT_REGION, Tried.FAIL_OPEN))
    # nothing usable for the apex anywhere: the default table fails open
    assert table.default.chains[("@", RType.A)] == ((DEFAULT_REGION, Tried.FAIL_OPEN),)
    # a region that serves a name itself records no chain; one that does not list it is walked from records
    assert ("deb", RType.A) not in table.countries["JP"].chains
    assert chain_of(table, Region(Level.COUNTRY, "JP"), ("deb", RType.A)) == ((Region(Level.COUNTRY, "JP"),
                                                                               Tried.SERVED),)
    assert chain_of(table, KR, ("deb", RType.A)) == ((KR, Tried.UNLISTED), (AS, Tried.SERVED))
    assert chain_of(table, Region(Level.COUNTRY, "FR"), ("deb", RType.A)) == (
        (Region(Level.COUNTRY, "FR"), Tried.NO_TABLE), (Region(Level.CONTINENT, "EU"), Tried.SERVED))
    # the chains agree with what a query gets
    pool = table.pool_for(Location("KR", "AS", 24), "deb", RType.AAAA)
    assert pool is not None and pool.region == DEFAULT_REGION and pool.fail_open
    pool = table.pool_for(Location("DE", "EU", 24), "deb", RType.A)
    assert pool is not None and pool.region == Region(Level.CONTINENT, "EU") and not pool.fail_open


def test_chains_are_shared(table: ActiveTable) -> None:
    chain = table.countries["KR"].chains[("deb", RType.AAAA)]
    rebuilt = chain_of(table, KR, ("deb", RType.AAAA))
    assert rebuilt is chain


def explained(config: Config, table: ActiveTable, location: Location = JP,
              state: HealthState | None = None) -> list[str]:
    return explain(config, table, location, "deb", None, state)


def test_explain_tells_the_records(config_dir: Path) -> None:
    config = configured(config_dir)
    table = build_table(config, HEALTH, 1, 1)
    down = MirrorHealth(up=False, reason="unreachable: connection refused", since=1_700_000_000.0)
    out = explained(config, table, state=HealthState(mirrors={"jp3": down}))
    jp = f"  country JP: table {config_dir}/country/JP.yaml lists 'deb', 2 usable of 5"  # jp2 syncing still counts
    assert out[out.index(jp) + 1:out.index(jp) + 4] == [
        "    jp3: DOWN since 2023-11-14 22:13:20 UTC (jp3): unreachable: connection refused",
        "    jp4: DOWN by operator (state: down in mirrors.yaml)",
        "    jpdrained: drained (priority 10000)"]
    assert "    as2: pending: as2 not judged yet (answered only while no judged entry is usable)" in out
    assert "  default: table " + f"{config_dir}/default.yaml lists 'deb', 1 usable of 2" in out
    assert "    def1: down (def1)" in out  # no saved health: the builder's word only
    assert "A: answered from the country JP table, usable entries" in out


def test_explain_reads_the_records_not_the_rules(config_dir: Path) -> None:
    """A record saying jp1 was left out (down) is what explain tells, whatever the health view said."""
    config = configured(config_dir)
    table = build_table(config, HEALTH, 1, 1)
    tier = table.countries["JP"]
    doctored = {**tier.left_out, ("deb", RType.A): (LeftOut("jp1", Why.DOWN, "jp1"),
                                                   *tier.left_out[("deb", RType.A)])}
    table = dataclasses.replace(table, countries={**table.countries,
                                                  "JP": dataclasses.replace(tier, left_out=doctored)})
    out = explained(config, table)
    assert f"  country JP: table {config_dir}/country/JP.yaml lists 'deb', 1 usable of 5" in out
    assert "    jp1: down (jp1)" in out


def test_explain_counts_pending_entries_served_while_nothing_is_judged(config_dir: Path) -> None:
    """Before the first cycle every entry is pending and served: explain still says they wait for a verdict."""
    config = configured(config_dir)
    out = explained(config, build_table(config, HealthView(), 1, 1))
    assert f"  country JP: table {config_dir}/country/JP.yaml lists 'deb', 0 usable of 5" in out
    assert "    jp1: pending: jp1 not judged yet (answered only while no judged entry is usable)" in out
    assert "A: answered from the country JP table, usable entries" in out


def test_plan_reads_who_serves_from_the_chains(config_dir: Path) -> None:
    config = configured(config_dir)
    table = build_table(config, HEALTH, 1, 1)
    kr = served(config, table, KR, "deb", RType.AAAA)
    assert kr.source == DEFAULT_REGION and kr.fail_open and kr.serving() == ("def1",)
    assert kr.listed == {"v6only": 0} and kr.status["v6only"].value == "down"
    de = served(config, table, Region(Level.COUNTRY, "DE"), "deb", RType.A)
    assert de.source == Region(Level.CONTINENT, "EU") and not de.fail_open and de.serving() == ("eu1", "eu2")
    apex = served(config, table, DEFAULT_REGION, "@", RType.A)
    assert apex.fail_open and apex.source == DEFAULT_REGION
    jp = served(config, table, Region(Level.COUNTRY, "JP"), "deb", RType.A)
    assert jp.source == Region(Level.COUNTRY, "JP") and jp.serving() == ("jp1",)
    assert jp.configured["jp4"] == 0 and jp.configured["jpdrained"] == 0 and jp.configured["jp3"] > 0


def test_the_status_document_tells_the_records(config_dir: Path) -> None:
    """The status page's lost entries, region lines and mirror states are the builder's records, with the
    health checks' own reason and time."""
    config = configured(config_dir)
    down = MirrorHealth(up=False, reason="stale: serial 1, master has 2", since=1_700_000_000.0)
    health = HealthState(mirrors={"jp3": down, "jp1": MirrorHealth(up=True, reason="ok"),
                                  "jp2": MirrorHealth(up=True, reason="ok", syncing=True)})
    table = build_table(config, HEALTH, 1, 1)
    inputs = StatusInputs(config, table, health, None, Totals(), 0.0, 1_700_000_100.0)
    (jp,) = region_details(inputs, ["country JP"])
    deb = next(p for p in jp["pools"] if (p["name"], p["type"]) == ("deb", "A"))
    assert [(x["target"], x["state"], x["reason"], x["since"]) for x in deb["lost"]] == [
        ("jp2", "syncing", "ok", None),
        ("jp3", "stale", "stale: serial 1, master has 2", 1_700_000_000.0),
        ("jp4", "operator down", "operator: state down", None),
        ("jpdrained", "drained", "priority 10000 (drained)", None)]
    assert [(x["target"], x["state"]) for x in deb["entries"]] == [("jp1", "up")]
    lines = {line["region"]: line for line in region_summaries(inputs)}
    assert lines["country JP"]["lost"] == ["jp3", "jp4"] and lines["country JP"]["problem"]
    assert lines["country DE"]["falls_back"] == ["deb A"] and lines["country DE"]["lost"] == ["de1", "de2"]
    assert not lines["continent EU"]["problem"]
    document = summary(inputs)
    mirrors = {m["name"]: m for m in document["mirrors"]}
    assert (mirrors["jp4"]["state"], mirrors["jp4"]["usable"]) == ("operator down", False)
    assert (mirrors["as2"]["state"], mirrors["as2"]["usable"]) == ("pending", True)
    assert mirrors["jp3"]["state"] == "stale" and mirrors["jp3"]["archives"][0]["status"] == "down"
    assert document["fail_open"] == ["@ A", "@ AAAA", "deb AAAA"]  # def1, the one IPv6 default mirror, is down
