"""docs/permissions.md embeds the role table generated from mazevault/rbac.py; keep them equal."""
from __future__ import annotations

import re
from pathlib import Path

from mazevault.management.commands.permissions_table import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def test_permissions_doc_matches_code() -> None:
    text = DOC.read_text()
    match = re.search(r"<!-- permissions-table:start -->\n(.*?)<!-- permissions-table:end -->", text, re.S)
    assert match, "permissions table markers missing in docs/permissions.md"
    assert match.group(1).strip() == render().strip()
