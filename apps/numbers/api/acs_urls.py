"""ACS Phone Numbers API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.numbers.api import acs_views

urlpatterns = [
    path("availablePhoneNumbers/countries", acs_views.Countries.as_view()),
    path("availablePhoneNumbers/countries/<str:country_code>/localities", acs_views.Localities.as_view()),
    path("availablePhoneNumbers/countries/<str:country_code>/areaCodes", acs_views.AreaCodes.as_view()),
    path("availablePhoneNumbers/countries/<str:country_code>/offerings", acs_views.Offerings.as_view()),
]
