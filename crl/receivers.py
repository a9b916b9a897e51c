"""Reactions to certificate events (``certificates.signals``): keep CRLs fresh."""
