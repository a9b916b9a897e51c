from django.apps import AppConfig


class MazeVaultConfig(AppConfig):
    name = "mazevault"
    verbose_name = "MazeVault"
    default_auto_field = "django.db.models.BigAutoField"
