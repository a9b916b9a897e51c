"""The Celery application: JSON only, settings under ``CELERY_*``, tasks autodiscovered per app."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mazevault.settings")

app = Celery("mazevault")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
