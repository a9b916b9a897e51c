"""Private-key custody behind one signer interface (``get_signer``); see ``base.py``."""
from .base import Signer
from .db import get_signer, get_signer_by_id, load_private_key, store_private_key

__all__ = ("Signer", "get_signer", "get_signer_by_id", "load_private_key", "store_private_key")
