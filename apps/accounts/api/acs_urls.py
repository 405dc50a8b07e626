"""ACS Identity API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.accounts.api import acs_views

urlpatterns = [
    path("identities", acs_views.IdentityCollection.as_view()),
    path("identities/<str:raw_id>/:issueAccessToken", acs_views.IssueAccessToken.as_view()),
    path("identities/<str:raw_id>/:revokeAccessTokens", acs_views.RevokeAccessTokens.as_view()),
    path("identities/<str:raw_id>", acs_views.IdentityDetail.as_view()),
    path("teamsUser/:exchangeAccessToken", acs_views.ExchangeTeamsUserToken.as_view()),
]
