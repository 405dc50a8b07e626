"""URL map (DESIGN.md): /r/<slug>/ ACS data plane, /api/v1/ management API, /ws/ WebSockets
(spool/asgi.py), /.well-known/jwks.json token keys, /healthz and /metrics (Prometheus) for
operators, /admin/ Django admin, / the console."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.accounts.signin import ThrottledAuthenticationForm
from apps.accounts.views import jwks
from apps.core.views import healthz
from apps.metrics.views import metrics

# The admin's name on its pages and in their titles ("Site administration | Spool administration").
admin.site.site_header = admin.site.site_title = "Spool administration"

urlpatterns = [
    path("r/<slug:slug>/", include("apps.accounts.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.numbers.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.sms.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.chat.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.calls.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.automation.api.acs_urls")),
    path("r/<slug:slug>/", include("apps.pstn.api.acs_urls")),
    path("api/v1/", include("apps.accounts.api.urls")),
    path("api/v1/", include("apps.numbers.api.urls")),
    path("api/v1/", include("apps.events.api.urls")),
    path("api/v1/", include("apps.sms.api.urls")),
    path("api/v1/", include("apps.chat.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", title="API docs · Spool"),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", title="API reference · Spool"),
        name="api-redoc",
    ),
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),  # Prometheus, behind SPOOL_METRICS_TOKEN
    path("admin/", admin.site.urls),
    path(
        "login/",
        LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("", include("django.contrib.auth.urls")),
    path("", include("apps.console.urls")),
]

handler400 = "apps.core.errors.handler400"
handler403 = "apps.core.errors.handler403"
handler404 = "apps.core.errors.handler404"
handler500 = "apps.core.errors.handler500"
