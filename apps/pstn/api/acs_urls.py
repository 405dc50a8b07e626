"""ACS SIP routing API routes, mounted under /r/<slug>/ (and a resource's own origin)."""

from __future__ import annotations

from django.urls import path

from apps.pstn.api import acs_views

urlpatterns = [
    path("sip", acs_views.SipConfigurationView.as_view()),
]
