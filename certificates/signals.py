"""Events other apps subscribe to; ``certificates`` never imports protocol apps.

All of them are sent after the transaction that caused them commits (``on_commit``).
"""
from django.dispatch import Signal

certificate_issued = Signal()  # kwargs: certificate_id
certificate_revoked = Signal()  # kwargs: certificate_id, ca_id, serial_number
certificate_unrevoked = Signal()  # kwargs: certificate_id, ca_id, serial_number
# Any change to a CA's revocation history (a leaf or a sub-CA revoked, a hold released): CRL/OCSP freshness.
revocation_changed = Signal()  # kwargs: ca_id, serial_number
ca_created = Signal()  # kwargs: ca_id
