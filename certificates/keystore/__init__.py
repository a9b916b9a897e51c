"""Private-key custody behind one signer interface (``get_signer``); see ``base.py``."""
from .base import Signer
from .db import get_signer, load_private_key, store_private_key

__all__ = ("Signer", "get_signer", "load_private_key", "store_private_key")
