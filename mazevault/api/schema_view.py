"""The OpenAPI schema endpoint (kept apart from ``schema.py``, which DRF imports while drf-spectacular's
views module is still loading)."""
from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView

from mazevault.errors import ValidationFailed


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: YAML by default, JSON with ``?format=json`` (or ``Accept: application/json``).

    ``REST_FRAMEWORK["URL_FORMAT_OVERRIDE"]`` is off project-wide because ``?format=`` selects the
    body of the export, CRL and CA-certificate endpoints; here alone it picks the renderer again.
    """

    FORMATS = ("json", "yaml")

    def perform_content_negotiation(self, request, force=False):
        wanted = request.query_params.get("format")
        if wanted:
            if wanted not in self.FORMATS:
                if force:  # rendering the error below: in JSON, like every error
                    wanted = "json"
                else:
                    raise ValidationFailed("format must be json or yaml.", details={"field": "format"})
            for renderer in self.get_renderers():
                if renderer.format == wanted:
                    return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
