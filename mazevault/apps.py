from django.apps import AppConfig


def _bump_on_change(sender, instance=None, created: bool = False, update_fields=None, using=None, **kwargs) -> None:
    """A cached row changed (``mazevault.cache``): move the stamp in the same transaction."""
    from django.contrib.auth import get_user_model

    from .cache import bump
    from .models import ApiToken

    if created and sender is ApiToken:
        return  # a new token was never cached (misses are not cached)
    if update_fields is not None and set(update_fields) <= {"last_login", "last_used_at"}:
        return  # bookkeeping the caches do not hold
    if sender is get_user_model() and created:
        return  # a new user has no cached entries yet
    bump(using)


def connect_cache_invalidation(*models) -> None:
    """Bump the cache stamp whenever one of ``models`` is saved or deleted."""
    from django.db.models.signals import post_delete, post_save

    for model in models:
        post_save.connect(_bump_on_change, sender=model, dispatch_uid=f"mv-cache-save-{model._meta.label}")
        post_delete.connect(_bump_on_change, sender=model, dispatch_uid=f"mv-cache-delete-{model._meta.label}")


class MazeVaultConfig(AppConfig):
    name = "mazevault"
    verbose_name = "MazeVault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from . import dbhealth
        from .models import ApiToken, ApprovalPolicy, Organization, Project, RoleAssignment

        connect_cache_invalidation(get_user_model(), ApiToken, RoleAssignment, Organization, Project, ApprovalPolicy)
        dbhealth.install()
