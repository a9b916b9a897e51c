"""The core (``mazevault``) imports no app: apps import the core (STYLE.md, issue 6). Apps plug into
the core through its registries (error translators, health components) when they load."""
from __future__ import annotations

import ast

from tests.conftest import ROOT

APPS = ("certificates", "acme", "crl", "rotation", "scep")


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_core_imports_no_app():
    offenders = {}
    for path in sorted((ROOT / "mazevault").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        bad = sorted(m for m in _imported_modules(path) if m.split(".")[0] in APPS)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_demo_bootstrap_lives_in_the_certificates_app():
    from django.core.management import get_commands

    assert get_commands()["bootstrap_demo"] == "certificates"
    assert not (ROOT / "mazevault" / "management" / "commands" / "bootstrap_demo.py").exists()


def test_the_pki_layer_knows_no_django():
    for path in sorted((ROOT / "certificates" / "pki").rglob("*.py")):
        assert not [m for m in _imported_modules(path) if m.split(".")[0] in ("django", "mazevault", "rest_framework")], path
