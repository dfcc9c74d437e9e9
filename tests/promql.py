"""The metric names a PromQL expression reads, and the names a /metrics scrape exports: enough PromQL to check
that shipped alert rules and dashboards read only metrics the server has (not a PromQL parser)."""
from __future__ import annotations

import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}
GRAFANA = re.compile(r"\$\{?\w+\}?|\[\$__\w+\]")  # template variables ($instance, ${datasource}, [$__rate_interval])


def metric_names(expr: str) -> set[str]:
    """Identifiers of `expr` that name series: not functions, keywords, label names or strings."""
    text = GRAFANA.sub("", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', text)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for found in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = found.group(1), found.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def label_values_metric(query: str) -> set[str]:
    """Grafana's `label_values(METRIC, label)` variable query: the metric it reads."""
    found = re.match(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)", query)
    return {found.group(1)} if found else set()


SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",), "untyped": ("",),
            "stateset": ("",), "gaugehistogram": ("_bucket", "_gsum", "_gcount"), "unknown": ("",)}


def exported_names(text: str) -> set[str]:
    """Every series name a Prometheus text exposition has or declares: the sample lines' names, and for each
    `# TYPE` the names its samples take (a family with no sample yet, such as `dnsbalance_fail_open` while
    nothing fails open, is exported all the same)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names |= {family + suffix for suffix in SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][\w:]*", line).group(0))  # type: ignore[union-attr]
    return names
