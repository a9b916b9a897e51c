"""Walk the audit hash chain; exit 1 naming the first broken link."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mazevault.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain."

    def handle(self, *args, **options) -> None:
        checked, broken = verify_chain()
        if broken is not None:
            raise CommandError(f"audit chain broken at event seq={broken.seq} id={broken.id} "
                               f"action={broken.action} (after {checked} good events)")
        self.stdout.write(f"audit chain intact: {checked} events")
