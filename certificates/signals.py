"""Events other apps subscribe to; ``certificates`` never imports protocol apps."""
from django.dispatch import Signal

certificate_issued = Signal()  # kwargs: certificate_id
certificate_revoked = Signal()  # kwargs: certificate_id
