import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mazevault.settings")
application = get_wsgi_application()

# Apps may put a WSGI wrapper in front of Django for a hot path of theirs (settings.WSGI_FAST_PATHS, e.g.
# OCSP skipping the middleware stack: crl/ocsp_wsgi.py explains what is kept and why). Named by string,
# like INSTALLED_APPS, so the core imports no app.
for _path in settings.WSGI_FAST_PATHS:
    application = import_string(_path)(application)
