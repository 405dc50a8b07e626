"""`manage.py metrics_server`: GET /metrics alone, on SPOOL_METRICS_PORT, for a host that runs
no web processes (`serve --role worker`, `beat` or `media`): its processes' samples (their
multiprocess folder) would otherwise reach no scrape. Same token and answer as the web ports'
/metrics (apps/metrics/views.py); anything else is 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.metrics import exporter
from apps.metrics.views import authorized

Respond = Callable[[str, list[tuple[str, str]]], Any]


def application(environ: dict[str, Any], respond: Respond) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
        respond("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: this port serves GET /metrics only.\n"]
    if not authorized(environ.get("HTTP_AUTHORIZATION", "")):
        respond(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("WWW-Authenticate", 'Bearer realm="spool-metrics"'),
            ],
        )
        return [b"Unauthorized: send Authorization: Bearer <SPOOL_METRICS_TOKEN>.\n"]
    body, content_type = exporter.render(environ.get("HTTP_ACCEPT", ""))
    respond("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store")])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one scrape every 15 s: no lines
        pass


class Command(BaseCommand):
    help = "Serve GET /metrics alone on SPOOL_METRICS_PORT (hosts without the web role)."

    def handle(self, *args: Any, **options: Any) -> None:
        with make_server(
            settings.BIND_ADDRESS, settings.METRICS_PORT, application, handler_class=_Quiet
        ) as server:
            server.serve_forever()
