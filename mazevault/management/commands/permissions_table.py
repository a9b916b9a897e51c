"""Print the role → permission table as Markdown (docs/permissions.md embeds this output)."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from mazevault.rbac import PERMISSIONS, ROLE_PERMISSIONS, Role


def render() -> str:
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |",
             "| --- | " + " | ".join("---" for _ in roles) + " |"]
    for permission in PERMISSIONS:
        marks = ["✓" if permission in ROLE_PERMISSIONS[r] else "" for r in roles]
        lines.append(f"| `{permission}` | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Print the built-in role/permission table (Markdown)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(render(), ending="")
