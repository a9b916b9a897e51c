import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mazevault.settings")
application = get_wsgi_application()

# OCSP requests skip the middleware stack (crl/ocsp_wsgi.py explains what is kept and why).
from crl.ocsp_wsgi import ocsp_fast_path  # noqa: E402  (needs the application, hence apps, loaded)

application = ocsp_fast_path(application)
