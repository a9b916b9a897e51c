from django.apps import AppConfig


class AcmeConfig(AppConfig):
    name = "acme"
    label = "acme"
    verbose_name = "ACME server (RFC 8555)"
    default_auto_field = "django.db.models.BigAutoField"
