"""ACS Identity API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.accounts.api import acs_views

# Also answered before Django by the token route (apps/accounts/token_route.py), which logs
# its requests under this pattern.
ISSUE_TOKEN_ROUTE = "identities/<str:raw_id>/:issueAccessToken"

urlpatterns = [
    path("identities", acs_views.IdentityCollection.as_view()),
    path(ISSUE_TOKEN_ROUTE, acs_views.IssueAccessToken.as_view()),
    path("identities/<str:raw_id>/:revokeAccessTokens", acs_views.RevokeAccessTokens.as_view()),
    path("identities/<str:raw_id>", acs_views.IdentityDetail.as_view()),
    path("teamsUser/:exchangeAccessToken", acs_views.ExchangeTeamsUserToken.as_view()),
]
