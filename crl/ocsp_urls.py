"""OCSP routes, mounted under ``api/v1/``. The GET form's base64 may contain ``/`` (hence ``path:``)."""
from django.urls import path

from .ocsp_views import ocsp_view

urlpatterns = [
    path("ocsp", ocsp_view, name="ocsp"),
    path("ocsp/", ocsp_view, {"encoded": ""}, name="ocsp-get-empty"),
    path("ocsp/<path:encoded>", ocsp_view, name="ocsp-get"),
    path("ca/<uuid:ca_id>/ocsp", ocsp_view, name="ca-ocsp"),
    path("ca/<uuid:ca_id>/ocsp/", ocsp_view, {"encoded": ""}, name="ca-ocsp-get-empty"),
    path("ca/<uuid:ca_id>/ocsp/<path:encoded>", ocsp_view, name="ca-ocsp-get"),
]
