"""ACS SMS API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.sms.api import acs_views

urlpatterns = [
    path("sms", acs_views.Send.as_view()),
    path("sms/optouts:add", acs_views.OptOuts.as_view(action="add")),
    path("sms/optouts:remove", acs_views.OptOuts.as_view(action="remove")),
    path("sms/optouts:check", acs_views.OptOuts.as_view(action="check")),
]
