from __future__ import annotations

from django.urls import path

from apps.console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("resources/", views.resource_list, name="resource-list"),
    path("resources/<slug:slug>/", views.resource_overview, name="resource-overview"),
    path("resources/<slug:slug>/rename/", views.resource_rename, name="resource-rename"),
    path("resources/<slug:slug>/delete/", views.resource_delete, name="resource-delete"),
    path("resources/<slug:slug>/keys/", views.resource_keys, name="resource-keys"),
    path("resources/<slug:slug>/access/", views.resource_access, name="resource-access"),
    path("resources/<slug:slug>/identities/", views.identities, name="identities"),
]
