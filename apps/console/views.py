"""Console pages: server-rendered, calling the same services as the APIs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts import services
from apps.accounts.models import (
    IDENTITY_LABEL_MAX_LENGTH,
    CommunicationIdentity,
    IncomingCalls,
    Resource,
    Role,
)
from apps.core.api import check_request_edges
from apps.core.errors import ApiError, refusal_response

PAGE_SIZE = 25


ResourceView = Callable[..., HttpResponse]


def resource_page(permission: str = services.VIEW) -> Callable[[ResourceView], ResourceView]:
    """Resolve `slug` to a resource the signed-in user may use with `permission`.

    Domain errors raised by the page become a message on the page it redirects to.
    """

    def decorate(view: ResourceView) -> ResourceView:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                # What no page takes (a NUL in a form field, a control character in the path
                # or query string) is refused before the page runs. (apps.core.api's
                # input_edge_middleware does this for every request once settings list it.)
                check_request_edges(request, multipart=True)
            except ApiError as error:
                return refusal_response(request, error)
            try:
                resource = services.access_resource(request.user, slug, permission)
            except ApiError as error:
                if error.status == 404:
                    return render(
                        request, "console/not_found.html", {"message": error.message}, status=404
                    )
                return render(
                    request, "console/forbidden.html", {"message": error.message}, status=403
                )
            return view(request, resource, *args, **kwargs)

        return wrapper

    return decorate


def staff_page(view: ResourceView) -> ResourceView:
    """The operator's pages (/staff/...). Others who are signed in get the console's "Not
    allowed" page: Django's staff_member_required would send them to the admin's login, where
    they are signed in already."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            return render(
                request,
                "console/forbidden.html",
                {"message": "This page is for the operator's staff."},
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper


def favicon(request: HttpRequest) -> HttpResponse:
    # Browsers ask for /favicon.ico on every origin whatever a page links (the admin's pages
    # and the API docs link none).
    return HttpResponsePermanentRedirect(static("console/favicon.svg"))


def _page(request: HttpRequest, items: Any) -> Any:
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _resource_context(
    request: HttpRequest, resource: Resource, tab: str, **extra: Any
) -> dict[str, Any]:
    user = request.user
    return {
        "resource": resource,
        "tab": tab,
        "role": services.role_of(user, resource),
        "can_read_keys": services.can(user, resource, services.READ_KEYS),
        "can_manage_keys": services.can(user, resource, services.MANAGE_KEYS),
        "can_manage_identities": services.can(user, resource, services.MANAGE_IDENTITIES),
        "can_manage_resource": services.can(user, resource, services.MANAGE_RESOURCE),
        "can_manage_members": services.can(user, resource, services.MANAGE_MEMBERS),
        "can_manage_numbers": services.can(user, resource, services.MANAGE_NUMBERS),
        "endpoint": services.resource_endpoint(resource),
        "path_endpoint": services.path_endpoint(resource),
        **extra,
    }


# --- Resources --------------------------------------------------------------------------
@login_required
def resource_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            resource = services.create_resource(request.POST.get("name", ""), owner=request.user)
        except ApiError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Resource {resource.name} is ready.")
            return redirect("console:resource-overview", slug=resource.slug)
    resources = services.list_resources(request.user).prefetch_related("memberships")
    page = _page(request, resources)
    rows = [(resource, services.resource_endpoint(resource)) for resource in page.object_list]
    return render(request, "console/resource_list.html", {"page": page, "rows": rows})


@resource_page()
def resource_overview(request: HttpRequest, resource: Resource) -> HttpResponse:
    from apps.console import metrics_views  # (it builds on this module)

    identities = services.list_identities(resource)
    context = _resource_context(
        request,
        resource,
        "overview",
        identity_count=identities.count(),
        tokens_issued_recently=identities.exclude(last_token_issued_at=None).count(),
        member_count=resource.memberships.count(),
        **metrics_views.chart_context(
            request,
            metrics_views.OVERVIEW_CHARTS,
            reverse("console:metrics-data", kwargs={"slug": resource.slug}),
        ),
    )
    return render(request, "console/resource_overview.html", context)


@require_POST
@resource_page(services.MANAGE_RESOURCE)
def resource_rename(request: HttpRequest, resource: Resource) -> HttpResponse:
    try:
        services.rename_resource(resource, request.POST.get("name", ""))
    except ApiError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Renamed to {resource.name}. The endpoint did not change.")
    return redirect("console:resource-overview", slug=resource.slug)


@resource_page(services.MANAGE_RESOURCE)
def resource_delete(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if request.POST.get("confirm_name") != resource.name:
            messages.error(request, "Type the resource's name exactly to delete it.")
        else:
            name = resource.name
            services.delete_resource(resource)
            messages.success(request, f"Resource {name} was deleted.")
            return redirect("console:resource-list")
    return render(
        request, "console/resource_delete.html", _resource_context(request, resource, "overview")
    )


@resource_page(services.READ_KEYS)
def resource_keys(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not services.can(request.user, resource, services.MANAGE_KEYS):
            messages.error(request, "Only owners can regenerate keys.")
        else:
            which = request.POST.get("key", "")
            try:
                services.regenerate_key(resource, which)
            except ApiError as error:
                messages.error(request, error.message)
            else:
                messages.success(
                    request, f"The {which} key was regenerated; the old one no longer works."
                )
        return redirect("console:resource-keys", slug=resource.slug)
    keys = [
        {
            "name": which,
            "label": which.capitalize(),
            "key": getattr(resource, f"{which}_key"),
            "rotated_at": getattr(resource, f"{which}_key_rotated_at"),
            "connection_string": services.connection_string(resource, which),
        }
        for which in ("primary", "secondary")
    ]
    return render(
        request,
        "console/resource_keys.html",
        _resource_context(request, resource, "keys", keys=keys),
    )


# --- Access control ---------------------------------------------------------------------
@resource_page()
def resource_access(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not services.can(request.user, resource, services.MANAGE_MEMBERS):
            messages.error(request, "Only owners can change access.")
            return redirect("console:resource-access", slug=resource.slug)
        action = request.POST.get("action")
        try:
            with transaction.atomic():
                if action == "add":
                    membership = services.add_member(
                        resource, request.POST.get("user", ""), request.POST.get("role", "")
                    )
                    messages.success(
                        request,
                        f"{membership.user.username} is now {membership.get_role_display()}.",
                    )
                elif action == "role":
                    services.change_member_role(
                        resource, int(request.POST["member"]), request.POST.get("role", "")
                    )
                    messages.success(request, "Role changed.")
                elif action == "remove":
                    services.remove_member(resource, int(request.POST["member"]))
                    messages.success(request, "Member removed.")
        except (ApiError, ValueError, KeyError) as error:
            messages.error(request, getattr(error, "message", "Invalid request."))
        return redirect("console:resource-access", slug=resource.slug)
    context = _resource_context(
        request,
        resource,
        "access",
        page=_page(request, services.list_members(resource)),
        roles=Role.choices,
    )
    return render(request, "console/resource_access.html", context)


# --- Identities & user access tokens --------------------------------------------------------
ISSUED_TOKEN_KEY = "console-issued-token"
# A search on the Identities page lists this many matches at most (in pages of PAGE_SIZE).
PAGE_SEARCH_LIMIT = 100


@resource_page()
def identities(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not services.can(request.user, resource, services.MANAGE_IDENTITIES):
            messages.error(request, "Your role cannot manage identities.")
        else:
            issued = _identity_action(request, resource)
            if issued:
                # Shown once on the next page (post/redirect/get: a reload issues nothing).
                request.session[ISSUED_TOKEN_KEY] = issued
        # Back to the search the form was sent from, if any.
        query = request.POST.get("q", "").strip()
        url = reverse("console:identities", kwargs={"slug": resource.slug})
        return redirect(f"{url}?{urlencode({'q': query})}" if query else url)
    issued = request.session.pop(ISSUED_TOKEN_KEY, None)
    if issued and issued.get("resource") == str(resource.pk):
        issued["expires_on"] = datetime.fromisoformat(issued["expires_on"])
    else:
        issued = None
    query = request.GET.get("q", "").strip()
    found = (
        services.search_identities(resource, query, limit=PAGE_SEARCH_LIMIT)
        if query
        else services.list_identities(resource)
    )
    context = _resource_context(
        request,
        resource,
        "identities",
        page=_page(request, found),
        query=query,
        search_capped=bool(query) and len(found) == PAGE_SEARCH_LIMIT,
        pager_query=f"{urlencode({'q': query})}&" if query else "",
        label_max_length=IDENTITY_LABEL_MAX_LENGTH,
        scopes=services.SCOPES,
        expiry_choices=[
            (60, "1 hour"),
            (240, "4 hours"),
            (480, "8 hours"),
            (720, "12 hours"),
            (1440, "24 hours"),
        ],
        issued=issued,
        incoming_call_choices=IncomingCalls.choices,
    )
    return render(request, "console/identities.html", context)


def _identity_action(request: HttpRequest, resource: Resource) -> dict[str, Any] | None:
    """Run one POSTed identity action. Returns a new token to show once, else None.

    The scopes and expiry chosen at the top of the page apply both to a new identity and to
    the "Issue token" button of an existing one (`token_for`).
    """
    action = "token" if request.POST.get("token_for") else request.POST.get("action")
    scopes = request.POST.getlist("scopes")
    try:
        minutes = int(request.POST.get("expires", services.MAX_EXPIRY_MINUTES))
    except ValueError:
        minutes = -1
    try:
        if action == "create":
            with transaction.atomic():
                identity, token = services.create_identity(
                    resource,
                    scopes=scopes or None,
                    expires_in_minutes=minutes if scopes else None,
                    label=request.POST.get("label", ""),
                )
            if token is None:
                messages.success(request, f"Identity {_named(identity)} created.")
                return None
            return _issued(resource, identity.raw_id, token, scopes)
        identity = services.access_identity(
            resource, request.POST.get("token_for") or request.POST.get("identity", "")
        )
        if action == "token":
            return _issued(
                resource, identity.raw_id, services.issue_token(identity, scopes, minutes), scopes
            )
        if action == "revoke":
            services.revoke_tokens(identity)
            messages.success(
                request, f"Every token of {identity.raw_id} issued so far is now refused."
            )
        elif action == "label":
            services.set_identity_label(identity, request.POST.get("label", ""))
            if identity.label:
                messages.success(request, f"{identity.raw_id} is now labelled “{identity.label}”.")
            else:
                messages.success(request, f"The label of {identity.raw_id} was cleared.")
        elif action == "incoming_calls":
            services.set_incoming_calls(identity, request.POST.get("incoming_calls", ""))
            label = IncomingCalls(identity.incoming_calls).label
            messages.success(request, f"Calls to {identity.raw_id}: {label}.")
        elif action == "delete":
            raw_id = identity.raw_id  # the id is gone once the row is deleted
            services.delete_identity(identity)
            messages.success(request, f"Identity {raw_id} deleted.")
    except ApiError as error:
        messages.error(request, error.message)
    return None


def _named(identity: CommunicationIdentity) -> str:
    return f"{identity.raw_id} (“{identity.label}”)" if identity.label else identity.raw_id


@require_GET
@resource_page()
def identity_search(request: HttpRequest, resource: Resource) -> HttpResponse:
    """The identity pickers' suggestions (static/console/picker.js), for any member's role:
    `{"identities": [{"rawId", "label"}, ...]}`, at most services.IDENTITY_SEARCH_LIMIT."""
    found = services.search_identities(resource, request.GET.get("q", ""))
    return JsonResponse(
        {"identities": [{"rawId": identity.raw_id, "label": identity.label} for identity in found]}
    )


def _issued(
    resource: Resource, raw_id: str, token: services.IssuedToken, scopes: list[str]
) -> dict[str, Any]:
    return {
        "resource": str(resource.pk),
        "identity": raw_id,
        "token": token.token,
        "expires_on": token.expires_on.isoformat(),
        "scopes": scopes,
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("console:resource-list"))
