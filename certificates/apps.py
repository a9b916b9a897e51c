from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "Certificates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mazevault.apps import connect_cache_invalidation

        from .models import CertificateAuthority, CertificateTemplate

        # Templates and CAs (their status, validity, certificate and chain) are cached per process.
        connect_cache_invalidation(CertificateAuthority, CertificateTemplate)
