"""Every environment variable ``mazevault/settings.py`` reads is documented in docs/settings.md and
listed in .env.example (STYLE.md: ".env.example lists every variable")."""
from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

READERS = {"env_str", "env_bool", "env_int", "env_list"}


def _variables_read_by_settings() -> set[str]:
    """Names passed as the first argument to env_*() or os.environ.get() in settings.py."""
    tree = ast.parse((ROOT / "mazevault" / "settings.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_reader = (isinstance(func, ast.Name) and func.id in READERS) or (
            isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Attribute)
            and func.value.attr == "environ")
        first = node.args[0]
        if is_reader and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.add(first.value)
    return names


def test_settings_reads_the_variables_this_test_expects_to_find():
    names = _variables_read_by_settings()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "MAZEVAULT_KEK", "MAZEVAULT_PUBLIC_URL"} <= names


def test_every_variable_is_documented_in_docs_settings_md():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "settings.md").read_text()))
    assert sorted(_variables_read_by_settings() - documented) == []


def test_every_variable_is_listed_in_env_example():
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert sorted(_variables_read_by_settings() - listed) == []
