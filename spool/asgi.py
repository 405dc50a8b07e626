"""ASGI entry point: HTTP through Django's WSGI handler, WebSockets through Channels.

Django's own ASGI handler starts a thread per request and answers ~9x slower than WSGI on
this hardware (DESIGN.md facts); BufferedWsgi runs the WSGI handler on a fixed thread pool
inside the event loop that serves WebSockets, so one port serves both at WSGI speed. Token
requests, SMS sends and chat posts, the busiest, are answered before Django when they can be
(apps/accounts/token_route.py and apps/sms/send_route.py on the event loop itself,
apps/chat/message_route.py on the request threads: wsgi_bridge.py says why).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spool.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from apps.core.broker_guard import BrokerOutageGuard  # noqa: E402
from apps.core.wsgi_bridge import BufferedWsgi  # noqa: E402

django_wsgi = get_wsgi_application()

from apps.accounts import token_route  # noqa: E402  (models: after Django's set-up)
from apps.chat import message_route  # noqa: E402
from apps.sms import send_route  # noqa: E402
from spool.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BufferedWsgi(
            django_wsgi,
            threads=settings.WEB_THREADS,
            max_body=settings.MAX_UPLOAD_BYTES,
            loop_shortcuts=[token_route.answer, send_route.answer, message_route.answer],
        ),
        "websocket": BrokerOutageGuard(URLRouter(websocket_urlpatterns)),
    }
)
