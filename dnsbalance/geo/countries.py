"""ISO 3166 country codes and their continents, from the table shipped in geo/data/countries.tsv."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    continent: str
    name: str


@cache
def countries() -> Mapping[str, Country]:
    """Alpha-2 and alpha-3 codes, both mapped to their country."""
    text = resources.files("dnsbalance.geo").joinpath("data/countries.tsv").read_text(encoding="utf-8")
    table: dict[str, Country] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        alpha2, alpha3, continent, name = line.split("\t")
        country = Country(alpha2, alpha3, continent, name)
        table[alpha2] = country
        table[alpha3] = country
    return MappingProxyType(table)


def country(code: str) -> Country | None:
    return countries().get(code.upper())


def continent_of(alpha2: str) -> str | None:
    found = countries().get(alpha2)
    return found.continent if found else None
