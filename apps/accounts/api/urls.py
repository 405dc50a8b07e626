"""Management API routes, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.accounts.api import views

urlpatterns = [
    path("resources/", views.ResourceList.as_view()),
    path("resources/<slug:slug>/", views.ResourceDetail.as_view()),
    path("resources/<slug:slug>/keys/", views.ResourceKeys.as_view()),
    path("resources/<slug:slug>/keys/regenerate/", views.RegenerateKey.as_view()),
    path("resources/<slug:slug>/members/", views.MemberList.as_view()),
    path("resources/<slug:slug>/members/<int:member_id>/", views.MemberDetail.as_view()),
    path("resources/<slug:slug>/identities/", views.IdentityList.as_view()),
    path("resources/<slug:slug>/identities/<str:raw_id>/", views.IdentityDetail.as_view()),
    path("resources/<slug:slug>/identities/<str:raw_id>/token/", views.IdentityToken.as_view()),
    path("resources/<slug:slug>/identities/<str:raw_id>/revoke/", views.IdentityRevoke.as_view()),
]
