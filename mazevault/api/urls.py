from django.urls import path
from rest_framework.routers import SimpleRouter

from .endpoints import (ApprovalPolicyViewSet, AuditEventViewSet, HealthView, OrganizationViewSet, ProjectViewSet,
                        TokenViewSet)

router = SimpleRouter(trailing_slash=False)
router.register("organizations", OrganizationViewSet, basename="organization")
router.register("projects", ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_pk>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})/approval-policies",
                ApprovalPolicyViewSet, basename="approval-policy")
router.register("users/tokens", TokenViewSet, basename="token")
router.register("audit-logs", AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
    *router.urls,
]
