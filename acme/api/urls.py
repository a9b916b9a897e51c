from rest_framework.routers import SimpleRouter

from .views import CredentialViewSet

router = SimpleRouter(trailing_slash=False)
router.register(r"organizations/(?P<org_pk>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})/acme-credentials",
                CredentialViewSet, basename="acme-credential")
urlpatterns = router.urls
