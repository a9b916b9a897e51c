"""CRL and revocation-status routes, mounted under /api/v1/ before the certificates router."""
from django.urls import path

from .models import CRLKind
from .views import CertificateStatusViewSet, CRLAdminViewSet, CRLShardView, CRLView

urlpatterns = [
    path("ca/<uuid:pk>/crl", CRLView.as_view(), name="ca-crl"),
    path("ca/<uuid:pk>/crl/shard/<int:shard>", CRLShardView.as_view(kind=CRLKind.FULL), name="ca-crl-shard"),
    path("ca/<uuid:pk>/crl/delta", CRLView.as_view(kind=CRLKind.DELTA), name="ca-crl-delta"),
    path("ca/<uuid:pk>/crl/delta/shard/<int:shard>", CRLShardView.as_view(kind=CRLKind.DELTA),
         name="ca-crl-delta-shard"),
    path("ca/<uuid:pk>/crl/regenerate", CRLAdminViewSet.as_view({"post": "regenerate"}), name="ca-crl-regenerate"),
    path("certificates/<uuid:pk>/status", CertificateStatusViewSet.as_view({"get": "status"}),
         name="certificate-status"),
]
