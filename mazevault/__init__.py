"""MazeVault Certificates: project package and core app (tenancy, tokens, audit)."""
from .celery import app as celery_app

__all__ = ("celery_app",)
