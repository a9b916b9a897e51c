from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

handler400 = "mazevault.api.exceptions.json_400"
handler403 = "mazevault.api.exceptions.json_403"
handler404 = "mazevault.api.exceptions.json_404"
handler500 = "mazevault.api.exceptions.json_500"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("mazevault.api.urls")),
    path("api/v1/", include("crl.urls")),
    path("api/v1/", include("certificates.api.urls")),
]
