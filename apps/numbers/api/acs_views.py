"""The ACS Phone Numbers API: browsing the available inventory (azure-communication-phonenumbers)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller
from apps.core.api import AcsApiView, page_of
from apps.numbers import services

PHONE_NUMBERS_API_VERSIONS = ("2021-03-07", "2022-12-01", "2024-03-01-preview", "2025-02-11", "2025-06-01")


class NumbersView(AcsApiView):
    api_versions = PHONE_NUMBERS_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]


class Countries(NumbersView):
    def get(self, request: Request, slug: str) -> Response:
        countries = [
            {"countryCode": code, "localizedName": name} for code, name in services.list_countries()
        ]
        return Response(page_of(request, countries, "countries"))


class Localities(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        pairs = services.list_localities(
            country_code,
            administrative_division=request.query_params.get("administrativeDivision"),
            number_type=request.query_params.get("phoneNumberType"),
        )
        localities = [
            {
                "localizedName": locality,
                # Spool keeps one name per division: the abbreviation (e.g. WA).
                "administrativeDivision": {"localizedName": division, "abbreviatedName": division},
            }
            for locality, division in pairs
        ]
        return Response(page_of(request, localities, "phoneNumberLocalities"))


class AreaCodes(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        codes = services.list_area_codes(
            country_code,
            number_type=request.query_params.get("phoneNumberType"),
            assignment_type=request.query_params.get("assignmentType"),
            locality=request.query_params.get("locality"),
            administrative_division=request.query_params.get("administrativeDivision"),
        )
        return Response(page_of(request, [{"areaCode": code} for code in codes], "areaCodes"))


class Offerings(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        offerings = [
            {
                "phoneNumberType": offering.number_type,
                "assignmentType": offering.assignment_type,
                "availableCapabilities": {"calling": offering.calling, "sms": offering.sms},
                "cost": services.cost_body(offering.monthly_cost, offering.currency),
            }
            for offering in services.list_offerings(
                country_code,
                number_type=request.query_params.get("phoneNumberType"),
                assignment_type=request.query_params.get("assignmentType"),
            )
        ]
        return Response(page_of(request, offerings, "phoneNumberOfferings"))
