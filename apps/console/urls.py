from __future__ import annotations

from django.urls import path

from apps.console import (
    automation_views,
    calls_views,
    chat_views,
    events_views,
    logs_views,
    metrics_views,
    numbers_views,
    phones_views,
    pstn_views,
    rooms_views,
    signup_views,
    sms_views,
    views,
)

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("signup/", signup_views.signup, name="signup"),
    path("signup/sent/", signup_views.signup_sent, name="signup-sent"),
    path("signup/confirm/<str:token>/", signup_views.signup_confirm, name="signup-confirm"),
    path("resources/", views.resource_list, name="resource-list"),
    path("resources/<slug:slug>/", views.resource_overview, name="resource-overview"),
    path("resources/<slug:slug>/rename/", views.resource_rename, name="resource-rename"),
    path("resources/<slug:slug>/delete/", views.resource_delete, name="resource-delete"),
    path("resources/<slug:slug>/keys/", views.resource_keys, name="resource-keys"),
    path("resources/<slug:slug>/access/", views.resource_access, name="resource-access"),
    path("resources/<slug:slug>/identities/", views.identities, name="identities"),
    path("resources/<slug:slug>/identities/search/", views.identity_search, name="identity-search"),
    path("resources/<slug:slug>/numbers/", numbers_views.numbers, name="numbers"),
    path(
        "resources/<slug:slug>/numbers/searches/<str:search_id>/",
        numbers_views.number_search,
        name="number-search",
    ),
    path(
        "resources/<slug:slug>/numbers/operations/<str:operation_id>/",
        numbers_views.number_operation,
        name="number-operation",
    ),
    path("resources/<slug:slug>/sip/", pstn_views.sip_trunks, name="sip"),
    path("resources/<slug:slug>/sms/", sms_views.sms_send, name="sms"),
    path("resources/<slug:slug>/sms/messages/", sms_views.sms_messages, name="sms-messages"),
    path(
        "resources/<slug:slug>/sms/messages/<str:message_id>/",
        sms_views.sms_message,
        name="sms-message",
    ),
    path("resources/<slug:slug>/sms/handsets/", sms_views.sms_handsets, name="sms-handsets"),
    path("resources/<slug:slug>/sms/opt-outs/", sms_views.sms_opt_outs, name="sms-opt-outs"),
    path("resources/<slug:slug>/chat/", chat_views.chat_threads, name="chat"),
    path(
        "resources/<slug:slug>/chat/threads/<str:thread_id>/",
        chat_views.chat_thread,
        name="chat-thread",
    ),
    path("resources/<slug:slug>/chat/try/", chat_views.chat_try, name="chat-try"),
    path("resources/<slug:slug>/chat/try/token/", chat_views.chat_token, name="chat-token"),
    path("resources/<slug:slug>/calls/", calls_views.calls, name="calls"),
    path("resources/<slug:slug>/calls/rooms/", rooms_views.rooms_list, name="rooms"),
    path("resources/<slug:slug>/calls/rooms/<str:room_id>/", rooms_views.room, name="room"),
    path(
        "resources/<slug:slug>/calls/rooms/<str:room_id>/delete/",
        rooms_views.room_delete,
        name="room-delete",
    ),
    path("resources/<slug:slug>/calls/try/", calls_views.calls_try, name="calls-try"),
    path("resources/<slug:slug>/calls/try/token/", calls_views.calls_token, name="calls-token"),
    path("resources/<slug:slug>/calls/group/", calls_views.calls_group, name="calls-group"),
    path("resources/<slug:slug>/calls/phones/", phones_views.virtual_phones, name="calls-phones"),
    path(
        "resources/<slug:slug>/calls/phones/ticket/",
        phones_views.virtual_phone_ticket,
        name="calls-phones-ticket",
    ),
    path(
        "resources/<slug:slug>/calls/automation/",
        automation_views.connections,
        name="calls-automation",
    ),
    path(
        "resources/<slug:slug>/calls/automation/<str:connection_id>/",
        automation_views.connection,
        name="calls-connection",
    ),
    path(
        "resources/<slug:slug>/calls/recordings/",
        automation_views.recordings,
        name="calls-recordings",
    ),
    path(
        "resources/<slug:slug>/calls/recordings/<str:recording_id>/file/",
        automation_views.recording_file,
        name="calls-recording-file",
    ),
    path("resources/<slug:slug>/calls/ivr/", automation_views.try_ivr, name="calls-ivr"),
    path(
        "resources/<slug:slug>/calls/ivr/token/",
        automation_views.try_ivr_token,
        name="calls-ivr-token",
    ),
    # Keep last among the calls/ paths, or it takes their place (calls/try/ would be a call id).
    # Any id reaches the view, so a malformed one gets the console's not-found page.
    path("resources/<slug:slug>/calls/<str:call_id>/", calls_views.call, name="call"),
    path("resources/<slug:slug>/events/", events_views.events, name="events"),
    path(
        "resources/<slug:slug>/events/deliveries/<str:delivery_id>/",
        events_views.event_delivery,
        name="event-delivery",
    ),
    path("resources/<slug:slug>/logs/", logs_views.request_log, name="request-log"),
    path("resources/<slug:slug>/metrics/", metrics_views.metrics_page, name="metrics"),
    path("resources/<slug:slug>/errors/", metrics_views.error_log, name="error-log"),
    path("resources/<slug:slug>/metrics/data/", metrics_views.metrics_data, name="metrics-data"),
    path("staff/metrics/", metrics_views.staff_metrics, name="staff-metrics"),
    path("staff/metrics/data/", metrics_views.staff_metrics_data, name="staff-metrics-data"),
    path("staff/numbers/import/", numbers_views.inventory_import, name="inventory-import"),
    path("staff/sip-trunks/", pstn_views.staff_sip_trunks, name="staff-sip-trunks"),
    path("staff/sip-trunks/<int:trunk_id>/", pstn_views.staff_sip_trunk, name="staff-sip-trunk"),
]
