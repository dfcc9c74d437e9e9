""""Did you mean" for names a configuration gets wrong: a mirror or relay misspelt in a table, a country or
continent file named by a code that is not ISO's (UK.yaml) or by its name (japan.yaml). Pure: the checks call it
with what they know."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from dnsbalance.geo.countries import CONTINENTS, countries

# Codes ISO 3166 reserves (the European Union's own for the United Kingdom and Greece), and the code they mean
COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}
CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}
CONTINENT_ALIASES = {"EUR": "EU", "ASI": "AS", "AFR": "AF", "ANT": "AN", "OCE": "OC", "AUS": "OC", "AU": "OC",
                     "US": "NA", "LA": "SA", "ME": "AS", "APAC": "AS", "EMEA": "EU", "AMER": "NA"}


def _key(text: str) -> str:
    """'North_America', 'north-america', 'NorthAmerica' -> 'northamerica'."""
    return re.sub(r"[^a-z]", "", text.lower())


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'osaka'?)' for the closest of `choices` (up to three), or '' when none is close."""
    pool = sorted({str(c) for c in choices})
    close = difflib.get_close_matches(str(word), pool, n=3, cutoff=0.6)
    if not close:  # case only: 'Tokyo' for 'tokyo'
        close = [c for c in pool if c.lower() == str(word).lower()][:3]
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


def country_code_for(stem: str) -> tuple[str, str] | None:
    """The ISO alpha-2 code (and the country's name) a file name that is not a code meant: UK -> GB, an
    English country name -> its code ('japan' -> JP, 'united-kingdom' -> GB), or the closest name."""
    table = countries()
    upper = stem.upper()
    if upper in COUNTRY_ALIASES and COUNTRY_ALIASES[upper] in table:
        found = table[COUNTRY_ALIASES[upper]]
        return found.alpha2, found.name
    names: dict[str, str] = {}
    short: dict[str, set[str]] = {}
    for country in table.values():
        names[_key(country.name)] = country.alpha2
        short.setdefault(_key(country.name.split(",")[0]), set()).add(country.alpha2)  # 'Korea, Republic of'
    names.update({name: codes.pop() for name, codes in short.items() if len(codes) == 1 and name not in names})
    wanted = _key(stem)
    if len(wanted) < 4:  # a short unknown code: a close name would be a guess
        return None
    match = names.get(wanted) or next(iter(difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.8)), None)
    if match is None:
        return None
    code = names[match] if match in names else match
    return code, table[code].name


def continent_code_for(stem: str) -> tuple[str, str] | None:
    """The continent code a file name meant: 'Europe' -> EU, 'EUR' -> EU, 'north-america' -> NA."""
    upper = stem.upper()
    if upper in CONTINENT_ALIASES:
        code = CONTINENT_ALIASES[upper]
        return code, CONTINENT_NAMES[code]
    by_name = {_key(name): code for code, name in CONTINENT_NAMES.items()}
    found = difflib.get_close_matches(_key(stem), list(by_name), n=1, cutoff=0.75)
    if found:
        code = by_name[found[0]]
        return code, CONTINENT_NAMES[code]
    close = difflib.get_close_matches(upper, CONTINENTS, n=1, cutoff=0.6)
    return (close[0], CONTINENT_NAMES[close[0]]) if close else None
