"""SMS routes of the management API, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.sms.api import views

urlpatterns = [
    path("resources/<slug:slug>/sms/messages/", views.MessageList.as_view()),
    path("resources/<slug:slug>/sms/messages/<str:message_id>/", views.MessageDetail.as_view()),
    path("resources/<slug:slug>/sms/opt-outs/", views.OptOutList.as_view()),
    path("resources/<slug:slug>/sms/opt-outs/<int:opt_out_id>/", views.OptOutDetail.as_view()),
    path("resources/<slug:slug>/sms/handsets/", views.HandsetList.as_view()),
    path(
        "resources/<slug:slug>/sms/handsets/<str:handset>/messages/",
        views.HandsetMessages.as_view(),
    ),
]
