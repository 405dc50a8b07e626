"""ACS Phone Numbers API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.numbers.api import acs_views

urlpatterns = [
    path("availablePhoneNumbers/countries", acs_views.Countries.as_view()),
    path(
        "availablePhoneNumbers/countries/<str:country_code>/localities",
        acs_views.Localities.as_view(),
    ),
    path(
        "availablePhoneNumbers/countries/<str:country_code>/areaCodes",
        acs_views.AreaCodes.as_view(),
    ),
    path(
        "availablePhoneNumbers/countries/<str:country_code>/offerings",
        acs_views.Offerings.as_view(),
    ),
    path("availablePhoneNumbers/countries/<str:country_code>/:search", acs_views.Search.as_view()),
    path("availablePhoneNumbers/countries/<str:country_code>/:browse", acs_views.Browse.as_view()),
    path("availablePhoneNumbers/searchResults/<str:search_id>", acs_views.SearchResult.as_view()),
    path("availablePhoneNumbers/:purchase", acs_views.Purchase.as_view()),
    path("availablePhoneNumbers/reservations", acs_views.Reservations.as_view()),
    path(
        "availablePhoneNumbers/reservations/<str:reservation_id>/:purchase",
        acs_views.PurchaseReservation.as_view(),
    ),
    path(
        "availablePhoneNumbers/reservations/<str:reservation_id>", acs_views.Reservation.as_view()
    ),
    path("phoneNumbers/operations/<str:operation_id>", acs_views.Operation.as_view()),
    path("phoneNumbers", acs_views.OwnedNumbers.as_view()),
    path("operatorInformation/:search", acs_views.OperatorInformation.as_view()),
    path("phoneNumbers/<str:number>/capabilities", acs_views.OwnedNumberCapabilities.as_view()),
    path("phoneNumbers/<str:number>", acs_views.OwnedNumber.as_view()),
]
