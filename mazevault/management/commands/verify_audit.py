"""``manage.py verify_audit``: check the audit chain against its signed head and checkpoints.

Exit status 0 when the chain holds, 1 (CommandError) naming every problem otherwise:
- an edited event (its link breaks), a deleted one (a gap in the positions),
- the newest events truncated away (the signed head or a checkpoint is longer than the chain),
- a head or checkpoint whose signature does not verify (rewritten by someone without the key),
- with ``--checkpoints FILE``: an exported checkpoint the chain no longer matches or that
  vanished from the database (a rollback to an earlier state).

``--export`` seals what is pending, verifies, keeps a checkpoint of the current head and prints
every checkpoint as JSON on stdout, for storage outside the database (docs/audit.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mazevault import audit


class Command(BaseCommand):
    help = "Verify the audit log's hash chain against its signed head and checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seal", action="store_true", help="seal pending events first")
        parser.add_argument("--checkpoints", metavar="FILE",
                            help="also compare with checkpoints exported earlier by --export")
        parser.add_argument("--export", action="store_true",
                            help="seal, verify, keep a checkpoint now and print all checkpoints as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        external = self._load(options["checkpoints"]) if options["checkpoints"] else None
        try:
            sealed = audit.seal() if options["seal"] or options["export"] else None
        except audit.ChainHeadMismatch as exc:
            raise CommandError(f"the sealer refuses to extend the chain: {exc}") from None
        report = audit.verify(external=external)
        if not report.ok:
            lines = [f"audit chain NOT intact ({len(report.problems)} problems):"]
            lines += [f"  - {problem.message}" for problem in report.problems[:50]]
            raise CommandError("\n".join(lines))
        if options["export"]:
            audit.checkpoint()
            self.stdout.write(json.dumps(audit.export(), indent=2))
            return
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if sealed:
            self.stdout.write(f"sealed {sealed} pending events")
        parts = [f"audit chain intact: {report.sealed} sealed events"]
        if report.head_length:
            parts.append(f"signed head at {report.head_length} (key {report.head_key_id})")
        parts.append(f"{report.checkpoints} checkpoints verified")
        if external is not None:
            parts.append(f"{report.external} exported checkpoints matched")
        parts.append(f"{report.unsealed} events not sealed yet")
        self.stdout.write("; ".join(parts))

    def _load(self, path: str) -> list[audit.Checkpoint]:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return audit.load_export(text)
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}") from None
