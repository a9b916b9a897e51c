from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import CACertificateView, CAViewSet, CertificateViewSet, TemplateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("ca", CAViewSet, basename="ca")
router.register("certificate-templates", TemplateViewSet, basename="template")
router.register("certificates", CertificateViewSet, basename="certificate")

urlpatterns = [
    path("ca/<uuid:pk>/certificate", CACertificateView.as_view(), name="ca-certificate"),
    *router.urls,
]
