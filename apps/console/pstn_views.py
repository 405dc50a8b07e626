"""Console pages for SIP routing: a resource's trunks and routes (read-only: tenants change
them through the ACS SIP routing API), and the staff pages for the operator's trunk settings."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts.models import Resource
from apps.console.views import _page, _resource_context, resource_page, staff_page
from apps.core.api import check_request_edges
from apps.core.errors import ApiError, refusal_response
from apps.pstn import services
from apps.pstn.forms import TrunkSettingsForm


@resource_page()
def sip_trunks(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _resource_context(
        request,
        resource,
        "sip",
        trunks=list(services.list_trunks(resource)),
        routes=list(services.list_routes(resource)),
    )
    return render(request, "console/sip.html", context)


@staff_page
def staff_sip_trunks(request: HttpRequest) -> HttpResponse:
    """Staff: every resource's trunks, with the operator's settings at a glance."""
    query = (request.GET.get("q") or "").strip()
    trunks = services.list_trunks()
    if query:
        trunks = trunks.filter(Q(fqdn__icontains=query) | Q(resource__name__icontains=query))
    return render(
        request,
        "console/sip_trunks_staff.html",
        {"page": _page(request, trunks), "query": query, "pager_query": _pager_query(query)},
    )


def _pager_query(query: str) -> str:
    return f"{urlencode({'q': query})}&" if query else ""


@staff_page
def staff_sip_trunk(request: HttpRequest, trunk_id: int) -> HttpResponse:
    """Staff: one trunk's operator settings (enabled, address, transport, digest credentials,
    networks allowed in, codecs, concurrency, outbound prefixes)."""
    try:
        check_request_edges(request, multipart=True)
        trunk = services.access_trunk(trunk_id)
    except ApiError as error:
        if error.status == 404:
            return render(request, "console/not_found.html", {"message": error.message}, status=404)
        return refusal_response(request, error)
    if request.method == "POST":
        form = TrunkSettingsForm(request.POST)
        if form.is_valid() and form.settings is not None:
            services.update_trunk_settings(trunk, form.settings)
            messages.success(request, f"Saved the settings of {trunk.fqdn}.")
            return redirect("console:staff-sip-trunk", trunk_id=trunk.pk)
    else:
        form = TrunkSettingsForm(trunk=trunk)
    return render(request, "console/sip_trunk_edit.html", {"trunk": trunk, "form": form})
