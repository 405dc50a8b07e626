"""The chat message route, `POST [/r/<slug>]/chat/threads/<id>/messages`, answered without
Django's request machinery.

Posting a message is the chat API's busiest request (issue 18: 400 messages/s through one web
process), and profiled through Django (bench/chat.py), its middleware, URL resolver and DRF
took a quarter of the post. This route does the rest alone, on the web tier's worker thread
(apps/core/wsgi_bridge.py): the request's checks and the answer's headers and log
(apps/accounts/shortcuts.py), the token (accounts.check_token, whose identity is read with
the thread: one round trip on PostgreSQL), the quota (core.quotas), the message's checks and
write (services.check_send_message and do_send_message), all shared with the view.
The message is stored by this process's GroupCommit (apps/core/batching.py): its thread writes
every post pending in one transaction (services.do_send_messages), while this worker thread
takes the next request, and the 201 goes out once the message is committed. Profiled at 400
posts/s (bench/chat.py), the worker thread spent half of each post's time writing it, one
statement and one wait for the GIL after another; a batch of posts takes each step once.

Only an ordinary success is answered here, and a quota's refusal (counted once); anything else
returns None before anything is written or counted, and Django answers it with the view's own
errors: whatever shortcuts.read leaves to Django, a missing, invalid, expired or revoked token
or one of another resource, a body the view refuses, a thread that is not there or whose
participant the caller is not, a database error. If the commit fails, Django answers the
request from the start (nothing of it was written). tests/chat/test_message_route.py holds
the two answers side by side.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from apps.accounts import services as accounts
from apps.accounts import shortcuts
from apps.chat import services
from apps.chat.api.acs_views import CHAT_API_VERSIONS, ChatView
from apps.chat.models import ChatMessage
from apps.core import quotas, sql
from apps.core.batching import GroupCommit
from apps.core.errors import ApiError
from apps.core.wsgi_bridge import Answer

PATH = re.compile(shortcuts.SLUG_PREFIX + r"/chat/threads/(?P<thread_id>[^/]+)/messages")
ROUTE = "chat/threads/<str:thread_id>/messages"  # its pattern in api/acs_urls.py
ALLOW = "GET, POST, HEAD, OPTIONS"  # the view's methods, as DRF names them
QUOTA = ChatView.quota


@dataclass
class _Post:
    """A checked message on its way to the database; `message` once it is stored."""

    request: services.MessageRequest
    message: ChatMessage | None = None


def _store(posts: list[_Post]) -> None:
    messages = services.do_send_messages([post.request for post in posts])
    for post, message in zip(posts, messages, strict=True):
        post.message = message


posted = GroupCommit("chat-messages", _store, inline=lambda: not settings.GROUP_COMMIT)


def answer(scope: dict[str, Any], body: bytes) -> Answer | Future[Answer] | None:
    """The answer to a message post (a Future of it, once the message is to be stored), or
    None to leave the request to Django."""
    if scope["method"] != "POST" or not scope["path"].endswith("/messages"):
        return None
    request = shortcuts.read(scope, body, PATH, CHAT_API_VERSIONS)
    if request is None:
        return None
    token = shortcuts.bearer_token(request)
    if token is None:
        return None
    try:
        # The token's identity and the thread are read together: one round trip on PostgreSQL.
        with sql.pipeline():
            token_check = accounts.check_token(token)
            thread_read = services.send_thread_read(
                request.route["thread_id"], token_check.resource_id
            )
        principal = token_check.principal()
        resource = principal.identity.resource
        if not shortcuts.addresses(request, resource):
            return None  # the token is another resource's
        checked = services.check_send_message(
            principal, request.route["thread_id"], request.fields, sent=thread_read
        )
    except (ApiError, DatabaseError):  # Django's path answers (and reconnects)
        return None
    logged_as = shortcuts.Logged(ROUTE, resource.slug, identity=principal.log_name)
    try:
        quotas.spend(QUOTA, principal.identity.pk, settings.QUOTAS[QUOTA], what=QUOTA)
    except quotas.QuotaExceeded as refused:
        return shortcuts.refuse(request, logged_as, refused, allow=ALLOW)
    post = _Post(checked)

    def respond() -> Answer:
        assert post.message is not None
        content = json.dumps({"id": str(post.message.pk)}, separators=(",", ":")).encode()
        return shortcuts.respond(request, logged_as, 201, content, allow=ALLOW)

    try:
        return posted.submit(post, then=respond)
    except DatabaseError:  # written at once (tests): nothing of it was kept
        return None
