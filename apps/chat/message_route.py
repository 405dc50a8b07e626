"""The chat message route, `POST [/r/<slug>]/chat/threads/<id>/messages`, answered without
Django's request machinery, its messages committed together with other requests' (a group
commit).

Posting a message is the chat API's busiest request (issue 18: 400 messages/s through one web
process), and profiled through Django (bench/chat.py), its middleware, URL resolver and DRF
took a quarter of the post. Here the request is read on the web process's event loop (a loop
shortcut, apps/core/wsgi_bridge.py; apps/accounts/shortcuts.py): its checks, the token's
signature and expiry (accounts.verify_token) and the message's body
(services.check_message_body), none of which reads the database. The post goes to this
process's GroupCommit (apps/core/batching.py), whose thread takes every post pending as one
batch: the identities of all their tokens and all their threads with their participants are
read together (`_check`: one round trip on PostgreSQL), each post's token, resource, thread
and participant checked as the view checks them, their quotas counted in one round trip to
Redis, and the messages of those that pass stored in one transaction
(services.do_send_messages). The loop awaits the batch and takes the next requests meanwhile,
and the 201 goes out only once the message is committed. (Checked on a request thread, a
post's reads were a round trip each, and profiled at 400 posts/s the request threads' turns at
the GIL held up the commit thread, the stage every post waits for.)

Only an ordinary success is answered here, and a quota's refusal (counted once); anything else
is left to Django, which answers with the view's own errors: whatever shortcuts.read leaves, a
missing, invalid or expired token or a body the view refuses (None at once), a revoked token
or one of another resource, a thread that is not there or whose participant the caller is not,
a database error (a Future of None, once the batch has checked it). If the commit fails, the
batch is stored post by post without checking or counting any again, and Django answers the
one that fails from the start (nothing of it was written). tests/chat/test_message_route.py
holds the two answers side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from apps.accounts import services as accounts
from apps.accounts import shortcuts
from apps.accounts.exceptions import TokenRefused
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


@dataclass(eq=False)
class _Post:
    """A message post whose token and body hold up, on its way through a batch (`_store`), and
    what came of it."""

    request: shortcuts.ApiRequest
    token: accounts.VerifiedToken
    thread_id: str
    body: services.MessageBody
    checked: bool = False  # once: a batch retried post by post does not check again
    # After the checks: None leaves the request to Django; else what to answer with.
    logged_as: shortcuts.Logged | None = None
    refused: quotas.QuotaExceeded | None = None
    send: services.MessageRequest | None = None
    message: ChatMessage | None = None

    def answerer(self) -> Callable[[], Answer] | None:
        """Once the batch is stored: what makes the answer (on the event loop, not on the
        commit thread, apps/core/wsgi_bridge.py), or None to leave the request to Django."""
        return None if self.logged_as is None else self.answer

    def answer(self) -> Answer:
        assert self.logged_as is not None
        if self.refused is not None:
            return shortcuts.refuse(self.request, self.logged_as, self.refused, allow=ALLOW)
        assert self.message is not None
        content = json.dumps({"id": str(self.message.pk)}, separators=(",", ":")).encode()
        return shortcuts.respond(self.request, self.logged_as, 201, content, allow=ALLOW)


def _store(posts: list[_Post]) -> None:
    _check([post for post in posts if not post.checked])
    sending = [(post, post.send) for post in posts if post.send is not None]
    if not sending:
        return
    messages = services.do_send_messages([send for _, send in sending])
    for (post, _), message in zip(sending, messages, strict=True):
        post.message = message


# Posts come from the event loop one at a time: a moment of gathering makes fewer, larger
# batches, as for SMS sends (apps/sms/send_route.py). bench/chat.py on PostgreSQL, 8 posting
# connections, 400 posts/s offered: no gathering gave 2,800-3,100 deliveries/s, 1.5 ms
# 3,100-3,700, 3 ms 2,900-3,900 (p99 36-59 ms), 5 ms 3,500-3,800.
GATHER_SECONDS = 0.003
posted = GroupCommit(
    "chat-messages", _store, inline=lambda: not settings.GROUP_COMMIT, gather=GATHER_SECONDS
)


def answer(scope: dict[str, Any], body: bytes) -> Future[Callable[[], Answer] | None] | None:
    """A Future of what makes the answer to a message post (of None: Django answers it
    after all), or None to leave the request to Django at once. Its checks against the database run in its
    batch, on the commit thread (`_check`)."""
    post = pending(scope, body)
    if post is None:
        return None
    try:
        return posted.submit(post, then=post.answerer)
    except DatabaseError:  # written at once (tests): nothing of it was kept
        return None


def pending(scope: dict[str, Any], body: bytes) -> _Post | None:
    """A post whose token's signature and body hold up, for a batch to check and store; None
    for anything else."""
    if scope["method"] != "POST" or not scope["path"].endswith("/messages"):
        return None
    request = shortcuts.read(scope, body, PATH, CHAT_API_VERSIONS)
    if request is None:
        return None
    token = shortcuts.bearer_token(request)
    if token is None:
        return None
    try:
        verified = accounts.verify_token(token)
        message = services.check_message_body(request.fields)
    except ApiError:
        return None
    return _Post(request, verified, request.route["thread_id"], message)


def _check(posts: list[_Post]) -> None:
    """Check a batch's posts against the database: their identities in one read and their
    threads with their participants in another, sent together (one round trip on
    PostgreSQL), while Redis counts their quotas (one round trip for all). A read per post, on
    a request thread, was a round trip each, and the request threads' turns at the GIL slowed
    the commit thread's, which every post waits for. A post that does not pass is left to
    Django (`logged_as` stays None), which says why; its count is given back, as Django counts
    it again."""
    for post in posts:
        post.checked = True
    if not posts:
        return
    senders = [post.token.identity_id for post in posts]
    try:
        with sql.pipeline():
            identities = accounts.send_identities_read(senders)
            threads = services.send_threads_read([post.thread_id for post in posts])
            refusals = quotas.spend_all(QUOTA, senders, settings.QUOTAS[QUOTA], what=QUOTA)
        found = identities()
    except DatabaseError:  # Django's path answers (and reconnects)
        quotas.give_back(QUOTA, senders, settings.QUOTAS[QUOTA])
        return
    failed = []
    for post, refused in zip(posts, refusals, strict=True):
        try:
            principal = post.token.principal(found)
            resource = principal.identity.resource
            if not shortcuts.addresses(post.request, resource):
                raise TokenRefused("The token belongs to another resource.")
            send = services.check_send_message(
                principal, post.thread_id, post.body, sent=threads(post.thread_id, resource.pk)
            )
        except (ApiError, DatabaseError):
            failed.append(post.token.identity_id)
            continue
        post.logged_as = shortcuts.Logged(ROUTE, resource.slug, identity=principal.log_name)
        if refused is None:
            post.send = send
        else:
            post.refused = refused
    quotas.give_back(QUOTA, failed, settings.QUOTAS[QUOTA])
