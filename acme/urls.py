"""ACME routes under /api/acme/ (the seed's list plus what RFC 8555 and RFC 9773 add)."""
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("directory", views.DirectoryView.as_view(), name="acme-directory"),
    path("new-nonce", views.NewNonceView.as_view(), name="acme-new-nonce"),
    path("new-account", views.NewAccountView.as_view(), name="acme-new-account"),
    path("acct/<uuid:pk>", views.AccountView.as_view(), name="acme-account"),
    path("orders/<uuid:pk>", views.OrdersView.as_view(), name="acme-orders"),
    path("key-change", views.KeyChangeView.as_view(), name="acme-key-change"),
    path("new-order", views.NewOrderView.as_view(), name="acme-new-order"),
    path("order/<uuid:pk>", views.OrderView.as_view(), name="acme-order"),
    path("authz/<uuid:pk>", views.AuthorizationView.as_view(), name="acme-authz"),
    path("challenge/<uuid:pk>", views.ChallengeView.as_view(), name="acme-challenge"),
    path("finalize/<uuid:pk>", views.FinalizeView.as_view(), name="acme-finalize"),
    path("cert/<uuid:pk>", views.CertificateView.as_view(), name="acme-cert"),
    path("revoke-cert", views.RevokeView.as_view(), name="acme-revoke-cert"),
    path("renewal-info/<str:cert_id>", views.RenewalInfoView.as_view(), name="acme-renewal-info"),
    re_path(r"^(?P<rest>.*)$", views.NotFoundView.as_view(), name="acme-not-found"),
]
