"""What the installed distribution puts on sys.path: only the `dnsbalance` namespace."""

import ast
import importlib.metadata
from pathlib import Path

import dnsbalance.health.cycle


def test_only_dnsbalance_is_a_top_level_module() -> None:
    """The health code lives in `health/` at the top of the repository but is installed as `dnsbalance.health`:
    a top-level `health` module would collide with any other distribution's."""
    top = importlib.metadata.distribution("dnsbalance").read_text("top_level.txt")
    assert top is not None and top.split() == ["dnsbalance"]
    assert dnsbalance.health.cycle.run_cycle.__module__ == "dnsbalance.health.cycle"


def test_no_code_imports_a_top_level_health_module() -> None:
    """Every import goes through the namespace (`from dnsbalance.health...`), never `health` from the repository root,
    which works only where the root is on sys.path."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("*/**/*.py")]:
        if ".venv" in path.parts or "dnsbalance" in path.parts and "health" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path}:{node.lineno}" for name in names if name.split(".")[0] == "health"]
    assert offenders == []
