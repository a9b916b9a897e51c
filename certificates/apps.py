from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "Certificates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The core renders errors and reports health without importing this app: register ours.
        from mazevault.api.exceptions import register_translator
        from mazevault.health import register_component

        from .errors import translate_pki_error
        from .keystore import health
        from .pki.errors import PKIError

        register_translator(PKIError, translate_pki_error)
        register_component("keystore", health.check)

        from mazevault.apps import connect_cache_invalidation

        from .models import CertificateAuthority, CertificateTemplate

        # Templates and CAs (their status, validity, certificate and chain) are cached per process.
        connect_cache_invalidation(CertificateAuthority, CertificateTemplate)
