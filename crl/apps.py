from django.apps import AppConfig


class CrlConfig(AppConfig):
    name = "crl"
    verbose_name = "CRLs and OCSP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to certificates.signals)
        from . import ocsp_tasks  # noqa: F401  (registers the OCSP housekeeping tasks)
