"""Chat: threads, participants, messages, read receipts and typing, as the ACS Chat API has them.

Every call acts for a TokenPrincipal (a user access token's identity and scopes). The rules:
- Only participants read or write a thread (others get 403); a thread of another resource, or
  a deleted one, does not exist for the caller (404).
- Scopes as ACS defines them: `chat` may do everything; `chat.join` may not create, delete or
  retitle threads; `chat.join.limited` may not add or remove others either (leaving is allowed).
- Every change takes the thread's next sequence number (an UPDATE ... RETURNING that holds the
  thread's row until commit, so a thread's changes commit in sequence order), is written to
  the activity log, and is pushed after commit to every participant's identity group. Webhook
  events are published in the same transaction through the events app.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, Resource
from apps.accounts.services import TokenPrincipal
from apps.chat import checks, notifications
from apps.chat.checks import MAX_PARTICIPANTS
from apps.chat.exceptions import (
    InvalidChatRequest,
    MessageNotFound,
    NotAParticipant,
    ScopeNotAllowed,
    ThreadNotFound,
    TooManyParticipants,
)
from apps.chat.models import (
    ChatActivity,
    ChatMessage,
    ChatParticipant,
    ChatThread,
    MessageType,
    ReadReceipt,
)
from apps.core import rows, sql
from apps.core.identifiers import identifier_model, is_communication_user, raw_id_of
from apps.core.sql import column
from apps.events import services as events_services

CHAT_SCOPES = frozenset({"chat", "chat.join", "chat.join.limited"})
MANAGE_THREADS = frozenset({"chat"})
MANAGE_PARTICIPANTS = frozenset({"chat", "chat.join"})
USER_MESSAGE_TYPES = (MessageType.TEXT, MessageType.HTML)


# --- Access ----------------------------------------------------------------------------------
def require_scope(principal: TokenPrincipal, allowed: frozenset[str] = CHAT_SCOPES) -> None:
    """Raises ScopeNotAllowed (403) unless the token carries one of `allowed`."""
    if not principal.scopes & CHAT_SCOPES:
        raise ScopeNotAllowed("The token has no chat scope (chat, chat.join, chat.join.limited).")
    if not principal.scopes & allowed:
        raise ScopeNotAllowed(
            f"This operation needs a token with the {' or '.join(sorted(allowed))} scope."
        )


@dataclass
class ThreadAccess:
    thread: ChatThread
    participant: ChatParticipant
    # Every participant's identity id, for fan-out (read with the access check: one query).
    member_ids: list[str]
    # Every participant's row, read with the same query: the participants are made from them
    # when asked for (making ten on every message was a tenth of a post, bench/chat.py).
    participant_rows: list[Sequence[Any]] = field(repr=False)

    @functools.cached_property
    def participants(self) -> list[ChatParticipant]:
        """Every participant, the caller too (the caller's is `participant` itself)."""
        mine = str(self.participant.identity_id)
        return [
            self.participant if identity_id == mine else _participant(self.thread, row)
            for identity_id, row in zip(self.member_ids, self.participant_rows, strict=True)
        ]


def access_thread(
    principal: TokenPrincipal,
    thread_id: str,
    allowed: frozenset[str] = CHAT_SCOPES,
    *,
    sent: ThreadRead | None = None,
) -> ThreadAccess:
    """The thread, if the principal takes part in it. Raises ScopeNotAllowed, ThreadNotFound
    (missing, deleted, or another resource's) or NotAParticipant (403). `sent`: the thread's
    read, when the caller sent it first (send_thread_read)."""
    require_scope(principal, allowed)
    resource = principal.identity.resource
    if sent is None:
        sent = send_thread_read(thread_id, resource.pk)
    if sent.resource_id != resource.pk:
        raise ValueError("the thread was read for another resource")
    thread, participant_rows = sent.found()
    if thread is None:
        exists = checks.is_storable(thread_id) and (
            ChatThread.objects.filter(
                pk=thread_id, resource=resource, deleted_at__isnull=True
            ).exists()
        )
        if not exists:
            raise ThreadNotFound(f"Chat thread {thread_id!r} was not found.")
        raise NotAParticipant("Only participants of the thread may do this.")
    thread.resource = resource
    participants = rows.columns(ChatParticipant)
    member_ids = [str(participants.value(row, "identity_id")) for row in participant_rows]
    mine = str(principal.identity.id)
    if mine not in member_ids:
        raise NotAParticipant("Only participants of the thread may do this.")
    participant = _participant(thread, participant_rows[member_ids.index(mine)])
    return ThreadAccess(thread, participant, member_ids, participant_rows)


@dataclass(frozen=True)
class ThreadRead:
    """A thread's read with its participants, sent (inside sql.pipeline() it goes out with
    what is sent after it); `found()` gives (thread or None, participants' rows)."""

    resource_id: Any
    found: Callable[[], tuple[ChatThread | None, list[Sequence[Any]]]]


def send_thread_read(thread_id: str, resource_id: Any) -> ThreadRead:
    """The resource's live thread `thread_id` and its participants, read (access_thread)."""
    return send_threads_read([thread_id])(thread_id, resource_id)


def send_threads_read(thread_ids: Collection[str]) -> Callable[[str, Any], ThreadRead]:
    """The live threads `thread_ids` and their participants, in one plain-SQL read, sent now
    (sql.send): every chat call makes it (the message route one per batch of posts, for all
    their threads), and building it through the ORM cost more than running it (profiled).
    Returns the function that gives one thread's read for a resource: a thread of another
    resource is not found. Each read makes its own thread object, as a read of its own did."""
    thread_columns = rows.columns(ChatThread)
    wanted = sorted({thread_id for thread_id in thread_ids if checks.is_storable(thread_id)})
    # (e.g. %00 in the path: no thread has such an id)
    sent = sql.send(_threads_query(len(wanted)), wanted) if wanted else lambda: []
    grouped: dict[str, list[Sequence[Any]]] | None = None

    def rows_of(thread_id: str) -> list[Sequence[Any]]:
        nonlocal grouped
        if grouped is None:  # each thread's rows (one per participant), once
            grouped = {}
            id_at = thread_columns.names.index("id")
            for row in sent():
                grouped.setdefault(row[id_at], []).append(row)
        return grouped.get(thread_id, [])

    def read(thread_id: str, resource_id: Any) -> ThreadRead:
        def found() -> tuple[ChatThread | None, list[Sequence[Any]]]:
            rows_found = rows_of(thread_id)
            if not rows_found:
                return None, []
            thread = thread_columns.instance(rows_found[0][: len(thread_columns)])
            if thread.resource_id != resource_id:
                return None, []
            return thread, [row[len(thread_columns) :] for row in rows_found]

        return ThreadRead(resource_id, found)

    return read


def _participant(thread: ChatThread, row: Sequence[Any]) -> ChatParticipant:
    """A participant from its row, its `thread` the one thread object, so a change to it is
    seen through every participant."""
    participant = rows.columns(ChatParticipant).instance(row)
    participant.thread = thread
    return participant


@functools.cache
def _threads_query(count: int) -> str:
    """Live threads with their participants' rows (in no particular order: sorting them cost
    more than the rest of the query, bench/chat.py); a thread without any has no row."""
    thread_columns, participant_columns = rows.columns(ChatThread), rows.columns(ChatParticipant)
    return (
        f"SELECT {thread_columns.select('t')}, {participant_columns.select('p')} "
        f"FROM {thread_columns.table} t JOIN {participant_columns.table} p "
        f"ON p.{column(ChatParticipant, 'thread')} = t.{column(ChatThread, 'id')} "
        f"WHERE t.{column(ChatThread, 'id')} IN ({', '.join(['%s'] * count)}) "
        f"AND t.{column(ChatThread, 'deleted_at')} IS NULL"
    )


def _resolve(
    resource: Resource, requests: Iterable[checks.ParticipantRequest]
) -> tuple[list[tuple[checks.ParticipantRequest, CommunicationIdentity]], list[dict[str, Any]]]:
    """Split requested participants into known identities of `resource` and per-participant
    errors (ACS answers those in `invalidParticipants`, keyed by rawId)."""
    wanted = {r.raw_id: r for r in requests}  # a repeated identity counts once (the last)
    ids = {raw: accounts.parse_raw_id(resource, raw) for raw in wanted}
    found = {
        i.id: i for i in CommunicationIdentity.objects.filter(pk__in=[v for v in ids.values() if v])
    }
    valid, invalid = [], []
    for raw, request in wanted.items():
        identity_id = ids[raw]
        identity = found.get(identity_id) if identity_id else None
        if identity is not None:
            valid.append((request, identity))
            continue
        reason = (
            f"Identity {raw!r} was not found."
            if is_communication_user(raw)
            else f"{raw!r} is not a communication user; only those can take part in chat."
        )
        invalid.append({"code": "NotFound", "message": reason, "target": raw})
    return valid, invalid


def _check_thread_size(participants: int) -> None:
    if participants > MAX_PARTICIPANTS:
        raise TooManyParticipants(
            f"A thread has at most {MAX_PARTICIPANTS} participants.", target="participants"
        )


# --- Sequence and activity -------------------------------------------------------------------
def _next_sequence(thread: ChatThread) -> int:
    """Take the thread's next sequence number. The UPDATE keeps the thread's row locked until
    the caller's transaction commits, so a thread's changes commit in sequence order."""
    ((sequence,),) = sql.fetch(
        f"UPDATE {ChatThread._meta.db_table} SET last_sequence = last_sequence + 1 "
        "WHERE id = %s RETURNING last_sequence",
        [thread.pk],
    )
    thread.last_sequence = int(sequence)
    return thread.last_sequence


def _take_message_sequences(counts: Mapping[str, int], now: datetime) -> dict[str, int]:
    """Take each thread's next `counts[id]` sequence numbers for messages sent `now`, in one
    statement (a batch's threads cost one round trip, not one each); returns each thread's
    last. Its rows stay locked until the caller's transaction commits, and on PostgreSQL are
    locked in the threads' order first: two web processes' batches then lock the same rows in
    the same order, so neither waits for the other's second (a deadlock). SQLite serializes
    writers: nothing to lock there."""
    ordered = sorted(counts.items())
    lock_first = bool(connection.features.has_select_for_update)
    found = sql.fetch(
        _take_sequences_query(len(ordered), lock_first),
        [
            *([thread_id for thread_id, _count in ordered] if lock_first else []),
            ChatThread._meta.get_field("last_message_at").get_db_prep_save(now, sql.database()),
            *(value for pair in ordered for value in pair),
        ],
        prepare=False,  # its text changes with the batch's threads
    )
    return {thread_id: int(last) for thread_id, last in found}


@functools.cache
def _take_sequences_query(count: int, lock_first: bool) -> str:
    table = ChatThread._meta.db_table
    threads = ", ".join(["%s"] * count)
    return (
        (
            f"WITH locked AS MATERIALIZED "
            f"(SELECT id FROM {table} WHERE id IN ({threads}) ORDER BY id FOR UPDATE) "
            if lock_first
            else ""
        )
        + f"UPDATE {table} SET last_sequence = {table}.last_sequence + v.column2, "
        f"last_message_at = %s FROM (VALUES {', '.join(['(%s, %s)'] * count)}) AS v "
        f"WHERE {table}.id = v.column1 "
        + (f"AND {table}.id IN (SELECT id FROM locked) " if lock_first else "")
        + f"RETURNING {table}.id, {table}.last_sequence"
    )


@dataclass(frozen=True)
class Change:
    """One realtime event of a thread, for its activity log and its audience."""

    thread: ChatThread
    sequence: int
    event: str
    data: dict[str, Any]
    member_ids: Sequence[str]
    also_to: Sequence[str] = ()  # identity ids told besides the members


def _record(
    thread: ChatThread,
    sequence: int,
    event: str,
    data: dict[str, Any],
    *,
    member_ids: Sequence[str],
    also_to: Sequence[str] = (),
) -> None:
    """Log one realtime event of the thread and push it to its audience after commit."""
    _record_all([Change(thread, sequence, event, data, member_ids, also_to)])


def _record_all(changes: Sequence[Change]) -> None:
    """Log realtime events (one INSERT) and push them to their audiences after commit (one
    hand-over to the realtime publisher)."""
    now = timezone.now()
    rows.insert(  # every change makes one (the ORM's INSERT cost more to build)
        [
            ChatActivity(
                thread=change.thread,
                sequence=change.sequence,
                event=change.event,
                data=change.data,
                also_to=list(change.also_to),
                created_at=now,
            )
            for change in changes
        ],
        ids=False,  # nobody reads them back: nothing waits for this INSERT in a pipeline
    )
    notifications.push_all(
        [(c.thread, c.sequence, c.event, c.data, [*c.member_ids, *c.also_to]) for c in changes],
        at=now,
    )


# --- Threads ---------------------------------------------------------------------------------
def create_thread(
    principal: TokenPrincipal, body: dict[str, Any], *, repeatability_request_id: str = ""
) -> tuple[ChatThread, list[dict[str, Any]]]:
    """Create a thread with the caller and the requested participants, with its metadata and
    retention policy. A repeated `repeatability_request_id` (from the same caller) answers with
    the thread it created first. Identities that do not exist come back as per-participant
    errors; the thread is created without them."""
    require_scope(principal, MANAGE_THREADS)
    resource = principal.identity.resource
    repeatability_request_id = checks.check_text(
        repeatability_request_id, "repeatability-request-id", limit=100
    ).strip()
    topic = checks.check_text(
        body.get("topic"), "topic", limit=checks.MAX_TOPIC_LENGTH, required=True
    )
    metadata = checks.check_thread_metadata(body.get("metadata"))
    retention_days = checks.check_retention_policy(body.get("retentionPolicy"))
    requested = checks.check_participants(body.get("participants"), required=False)
    if repeatability_request_id:
        earlier = ChatThread.objects.filter(
            resource=resource,
            created_by_raw_id=principal.raw_id,
            repeatability_request_id=repeatability_request_id,
        ).first()
        if earlier is not None:
            return earlier, []
    valid, invalid = _resolve(resource, requested)
    members = {identity.id: (request, identity) for request, identity in valid}
    if principal.identity.id not in members:
        me = checks.ParticipantRequest(principal.raw_id, "", None, {})
        members = {principal.identity.id: (me, principal.identity), **members}
    _check_thread_size(len(members))
    now = timezone.now()
    with transaction.atomic():
        thread = ChatThread.objects.create(
            resource=resource,
            topic=topic,
            created_by_raw_id=principal.raw_id,
            created_at=now,
            last_sequence=1,
            repeatability_request_id=repeatability_request_id,
            metadata=metadata,
            retention_days=retention_days,
            expires_at=_expiry(now, retention_days),
        )
        participants = ChatParticipant.objects.bulk_create(
            [
                ChatParticipant(
                    thread=thread,
                    identity=identity,
                    display_name=request.display_name,
                    share_history_time=request.share_history_time,
                    metadata=request.metadata,
                    added_at=now,
                    added_sequence=1,
                )
                for request, identity in members.values()
            ]
        )
        member_ids = [str(p.identity_id) for p in participants]
        creator = next(p for p in participants if p.identity_id == principal.identity.id)
        _record(
            thread,
            1,
            "chatThreadCreated",
            notifications.thread_created(thread, participants, creator),
            member_ids=member_ids,
        )
        notifications.publish_thread_created(thread, participants)
    return thread, invalid


def list_threads(
    principal: TokenPrincipal, *, start_time: datetime | None = None
) -> QuerySet[ChatThread]:
    """The caller's threads, most recently active first (deleted ones carry deletedOn)."""
    require_scope(principal)
    threads = ChatThread.objects.filter(participants__identity=principal.identity)
    if start_time is not None:
        threads = threads.filter(last_message_at__gte=start_time) | threads.filter(
            last_message_at__isnull=True, created_at__gte=start_time
        )
    # Coalesce: PostgreSQL sorts NULLs first in a descending order, SQLite last.
    return threads.annotate(active_at=Coalesce("last_message_at", "created_at")).order_by(
        "-active_at", "pk"
    )


def _expiry(created_at: datetime, retention_days: int | None) -> datetime | None:
    return None if retention_days is None else created_at + timedelta(days=retention_days)


def update_thread(principal: TokenPrincipal, thread_id: str, body: dict[str, Any]) -> None:
    """Apply a merge-patch of the thread's properties: `topic` (a topicUpdated system message
    follows), `metadata` (merged key by key; a key set to null is removed) and
    `retentionPolicy` (replaced; null or kind none removes it, and a thread already past its
    new lifetime goes at beat's next apply_retention). Every field is checked before anything
    changes. Participants hear of it unless nothing changed."""
    access = access_thread(principal, thread_id, MANAGE_THREADS)
    thread = access.thread
    topic = thread.topic
    if "topic" in body:
        topic = checks.check_text(
            body.get("topic"), "topic", limit=checks.MAX_TOPIC_LENGTH, required=True
        )
    metadata = thread.metadata
    if "metadata" in body:
        metadata = checks.merge_metadata(thread.metadata, body["metadata"])
    retention_days = thread.retention_days
    if "retentionPolicy" in body:
        retention_days = checks.check_retention_policy(body["retentionPolicy"])
    if "topic" not in body and (metadata, retention_days) == (
        thread.metadata,
        thread.retention_days,
    ):
        return  # a merge-patch that changes nothing
    with transaction.atomic():
        sequence = _next_sequence(thread)
        if "metadata" in body:
            # Merged again under the row lock: a concurrent patch of other keys is kept.
            current = ChatThread.objects.values_list("metadata", flat=True).get(pk=thread.pk)
            metadata = checks.merge_metadata(current, body["metadata"])
        now = timezone.now()
        expires_at = _expiry(thread.created_at, retention_days)
        ChatThread.objects.filter(pk=thread.pk).update(
            topic=topic, metadata=metadata, retention_days=retention_days, expires_at=expires_at
        )
        thread.topic, thread.metadata = topic, metadata
        thread.retention_days, thread.expires_at = retention_days, expires_at
        if "topic" in body:
            _system_message(
                thread, sequence, MessageType.TOPIC_UPDATED, principal.raw_id, now=now, topic=topic
            )
        _record(
            thread,
            sequence,
            "chatThreadPropertiesUpdated",
            notifications.thread_updated(thread, access.participant, now),
            member_ids=access.member_ids,
        )
        notifications.publish_thread_updated(thread, principal.raw_id, access.member_ids, now)


def delete_thread(principal: TokenPrincipal, thread_id: str) -> None:
    """Soft-delete: the thread answers 404 from now on; participants are told."""
    access = access_thread(principal, thread_id, MANAGE_THREADS)
    with transaction.atomic():
        do_delete_thread(access.thread, by=access.participant, members=access.member_ids)


def do_delete_thread(
    thread: ChatThread, *, by: ChatParticipant | None, members: Sequence[str]
) -> None:
    """Soft-delete `thread` and tell its participants (`members`, identity ids) and webhooks.
    `by` None: the system deletes it (its retention policy ran out), and the events say so.
    Call inside a transaction; taking the thread's sequence locks its row until commit."""
    sequence = _next_sequence(thread)
    now = timezone.now()
    ChatThread.objects.filter(pk=thread.pk).update(deleted_at=now)
    thread.deleted_at = now
    _record(
        thread,
        sequence,
        "chatThreadDeleted",
        notifications.thread_deleted(thread, by, now),
        member_ids=members,
    )
    by_raw_id = None if by is None else notifications.raw_id(thread.resource_id, by.identity_id)
    notifications.publish_thread_deleted(thread, by_raw_id, members, now)


# --- Participants ----------------------------------------------------------------------------
def list_participants(principal: TokenPrincipal, thread_id: str) -> QuerySet[ChatParticipant]:
    access = access_thread(principal, thread_id)
    return access.thread.participants.all()


def add_participants(
    principal: TokenPrincipal, thread_id: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Add participants (one already in the thread gets its name and history time updated).
    Returns the per-participant errors; raises TooManyParticipants if the thread would
    pass its limit (then nobody is added)."""
    access = access_thread(principal, thread_id, MANAGE_PARTICIPANTS)
    requested = checks.check_participants(body.get("participants"), required=True)
    valid, invalid = _resolve(principal.identity.resource, requested)
    present = {p.identity_id: p for p in access.thread.participants.all()}
    new = [(r, i) for r, i in valid if i.id not in present]
    _check_thread_size(len(present) + len(new))
    if not valid:
        return invalid
    with transaction.atomic():
        thread = access.thread
        for request, identity in valid:
            if identity.id in present:  # already in: its name, history time, metadata are updated
                ChatParticipant.objects.filter(pk=present[identity.id].pk).update(
                    display_name=request.display_name,
                    share_history_time=request.share_history_time,
                    metadata=request.metadata,
                )
        if not new:
            return invalid
        sequence = _next_sequence(thread)
        now = timezone.now()
        added = ChatParticipant.objects.bulk_create(
            [
                ChatParticipant(
                    thread=thread,
                    identity=identity,
                    display_name=request.display_name,
                    share_history_time=request.share_history_time,
                    metadata=request.metadata,
                    added_at=now,
                    added_sequence=sequence,
                )
                for request, identity in new
            ]
        )
        _system_message(
            thread,
            sequence,
            MessageType.PARTICIPANT_ADDED,
            principal.raw_id,
            now=now,
            participants=[participant_body(p) for p in added],
        )
        member_ids = [*access.member_ids, *(str(p.identity_id) for p in added)]
        _record(
            thread,
            sequence,
            "participantsAdded",
            notifications.participants_added(access.participant, added, now),
            member_ids=member_ids,
        )
        notifications.publish_participants_added(thread, principal.raw_id, added, member_ids, now)
    return invalid


def remove_participant(principal: TokenPrincipal, thread_id: str, body: dict[str, Any]) -> None:
    """Remove one participant (the body is a bare CommunicationIdentifierModel). Anyone may
    leave; removing someone else needs chat or chat.join. Removing an identity that is not in
    the thread succeeds and changes nothing (no system message, no event), as on ACS: its
    API documents no 404 for this operation, and the official samples remove a user who was
    never added and expect success."""
    access = access_thread(principal, thread_id)
    raw_id = raw_id_of(body)
    if raw_id is None or not checks.is_storable(raw_id):
        raise InvalidChatRequest("The body must be a communication identifier.", target="rawId")
    if raw_id != principal.raw_id:
        require_scope(principal, MANAGE_PARTICIPANTS)
    identity_id = accounts.parse_raw_id(principal.identity.resource, raw_id)
    removed = (
        None
        if identity_id is None
        else next((p for p in access.participants if p.identity_id == identity_id), None)
    )
    if removed is None:
        return
    with transaction.atomic():
        do_remove_participant(
            access.thread, removed, by=access.participant, members=access.member_ids
        )


def do_remove_participant(
    thread: ChatThread, removed: ChatParticipant, *, by: ChatParticipant, members: list[str]
) -> None:
    """Take `removed` out of the thread and tell everyone, the removed one too. Call inside a
    transaction; `members` are the thread's identity ids before the removal."""
    sequence = _next_sequence(thread)
    now = timezone.now()
    removed_id = str(removed.identity_id)
    removed_raw_id = notifications.raw_id(thread.resource_id, removed_id)
    by_raw_id = notifications.raw_id(thread.resource_id, by.identity_id)
    # Everything about the removed one is read before its row goes.
    event = notifications.participants_removed(by, removed, now)
    body = participant_body(removed)
    notifications.publish_participant_removed(thread, by_raw_id, removed, members, now)
    removed.delete()
    ReadReceipt.objects.filter(thread=thread, reader_raw_id=removed_raw_id).delete()
    _system_message(
        thread, sequence, MessageType.PARTICIPANT_REMOVED, by_raw_id, now=now, participants=[body]
    )
    _record(
        thread,
        sequence,
        "participantsRemoved",
        event,
        member_ids=[m for m in members if m != removed_id],
        also_to=[removed_id],
    )


def leave_every_thread(identity: CommunicationIdentity) -> None:
    """An identity that is being deleted leaves its threads, as if it had left each one (the
    others see participantsRemoved). Runs inside the deletion's transaction."""
    mine = ChatParticipant.objects.select_related("thread__resource").filter(
        identity=identity, thread__deleted_at__isnull=True
    )
    for participant in mine:
        thread = participant.thread
        members = [str(i) for i in thread.participants.values_list("identity_id", flat=True)]
        do_remove_participant(thread, participant, by=participant, members=members)


# --- Messages --------------------------------------------------------------------------------
def _system_message(
    thread: ChatThread,
    sequence: int,
    kind: str,
    initiator_raw_id: str,
    *,
    now: datetime,
    topic: str = "",
    participants: list[dict[str, Any]] | None = None,
) -> ChatMessage:
    return ChatMessage.objects.create(
        thread=thread,
        sequence_id=sequence,
        type=kind,
        topic=topic,
        participants=participants or [],
        sender_raw_id=initiator_raw_id,
        created_at=now,
    )


@dataclass(frozen=True)
class MessageRequest:
    """A message a participant may send, checked (check_send_message)."""

    principal: TokenPrincipal
    access: ThreadAccess
    body: MessageBody


@dataclass(frozen=True)
class MessageBody:
    """A message's body, checked (check_message_body): what it says and how."""

    kind: str
    content: str
    display_name: str
    metadata: dict[str, str]


def check_message_body(body: dict[str, Any]) -> MessageBody:
    """Check a text or html message's body; nothing is read or written. Raises
    InvalidChatRequest (400)."""
    content = checks.check_content(body.get("content"))
    kind = body.get("type") or MessageType.TEXT
    if kind not in USER_MESSAGE_TYPES:
        raise InvalidChatRequest("type must be text or html.", target="type")
    display_name = checks.check_text(
        body.get("senderDisplayName"), "senderDisplayName", limit=checks.MAX_DISPLAY_NAME_LENGTH
    )
    return MessageBody(kind, content, display_name, checks.check_metadata(body.get("metadata")))


def check_send_message(
    principal: TokenPrincipal,
    thread_id: str,
    body: dict[str, Any] | MessageBody,
    *,
    sent: ThreadRead | None = None,
) -> MessageRequest:
    """Check a text or html message of the caller to the thread (`body` checked already when
    a MessageBody); nothing is written. Raises InvalidChatRequest (400), and what
    access_thread raises (`sent`: as it takes it)."""
    message = body if isinstance(body, MessageBody) else check_message_body(body)
    access = access_thread(principal, thread_id, sent=sent)
    return MessageRequest(principal, access, message)


def do_send_message(request: MessageRequest) -> ChatMessage:
    """Store a checked message and tell every participant (the sender too, as ACS does) and
    the webhooks."""
    return do_send_messages([request])[0]


def do_send_messages(requests: Sequence[MessageRequest]) -> list[ChatMessage]:
    """Store checked messages in one transaction, in the order given, and tell every
    participant and the webhooks: one request's, or many requests' at once (the message
    route's group commit, apps/chat/message_route.py). Each thread's sequence numbers are taken
    in one UPDATE, which locks its row until the commit; the messages, their activity and
    their events go in one INSERT each. On PostgreSQL they go out in a pipeline
    (sql.pipeline): the webhooks' subscriptions are read with the UPDATE, and the activity
    and events go with the end of the pipeline, five round trips in all instead of seven."""
    per_thread = Counter(request.access.thread.pk for request in requests)
    messages: list[ChatMessage] = []
    now = timezone.now()
    with transaction.atomic(), sql.pipeline():
        resources = {request.access.thread.resource for request in requests}
        subscriptions = {r.pk: events_services.read_subscriptions(r) for r in resources}
        last_taken = _take_message_sequences(per_thread, now)
        gone = per_thread.keys() - last_taken.keys()  # removed since the posts were checked
        if gone:
            raise ThreadNotFound(f"Chat thread {min(gone)!r} was not found.")
        # thread id: the number of its next message in this batch
        upcoming = {
            thread_id: last - per_thread[thread_id] + 1 for thread_id, last in last_taken.items()
        }
        for request in requests:
            thread = request.access.thread
            sequence = upcoming[thread.pk]
            upcoming[thread.pk] = sequence + 1
            thread.last_sequence, thread.last_message_at = sequence, now
            messages.append(
                ChatMessage(
                    thread=thread,
                    sequence_id=sequence,
                    type=request.body.kind,
                    content=request.body.content,
                    sender_raw_id=request.principal.raw_id,
                    sender_display_name=(
                        request.body.display_name or request.access.participant.display_name
                    ),
                    metadata=request.body.metadata,
                    created_at=now,
                )
            )
        rows.insert(messages)  # (the ORM's INSERT cost more to build than to run)
        members = [request.access.member_ids for request in requests]
        _record_all(
            [
                Change(
                    message.thread,
                    message.sequence_id,
                    "chatMessageReceived",
                    notifications.message_event(message),
                    member_ids,
                )
                for message, member_ids in zip(messages, members, strict=True)
            ]
        )
        notifications.publish_messages(
            list(zip(messages, members, strict=True)), "received", subscriptions
        )
    return messages


def send_message(principal: TokenPrincipal, thread_id: str, body: dict[str, Any]) -> ChatMessage:
    """Store a text or html message and tell every participant (the sender too, as ACS does)."""
    return do_send_message(check_send_message(principal, thread_id, body))


def visible_messages(access: ThreadAccess) -> QuerySet[ChatMessage]:
    """The thread's messages the participant may see: from its share-history time on."""
    messages = ChatMessage.objects.filter(thread=access.thread)
    if access.participant.share_history_time is not None:
        messages = messages.filter(created_at__gte=access.participant.share_history_time)
    return messages


def list_messages(
    principal: TokenPrincipal, thread_id: str, *, start_time: datetime | None = None
) -> QuerySet[ChatMessage]:
    """Newest first, as ACS lists them; `start_time` keeps those created at or after it."""
    messages = visible_messages(access_thread(principal, thread_id))
    if start_time is not None:
        messages = messages.filter(created_at__gte=start_time)
    return messages.order_by("-sequence_id")


def _access_message(access: ThreadAccess, message_id: str) -> ChatMessage:
    message = (
        visible_messages(access).filter(pk=int(message_id)).first()
        if message_id.isascii() and message_id.isdigit() and len(message_id) < 19
        else None
    )
    if message is None:
        raise MessageNotFound(f"Message {message_id!r} was not found in the thread.")
    return message


def get_message(principal: TokenPrincipal, thread_id: str, message_id: str) -> ChatMessage:
    return _access_message(access_thread(principal, thread_id), message_id)


def _access_own_message(
    access: ThreadAccess, principal: TokenPrincipal, message_id: str
) -> ChatMessage:
    message = _access_message(access, message_id)
    _check_sender(message, principal)
    if message.deleted_at is not None:
        raise InvalidChatRequest("A deleted message cannot be edited.")
    return message


def _check_sender(message: ChatMessage, principal: TokenPrincipal) -> None:
    if message.type not in USER_MESSAGE_TYPES or message.sender_raw_id != principal.raw_id:
        raise NotAParticipant("Only the sender can change a message (system messages: nobody).")


def edit_message(
    principal: TokenPrincipal, thread_id: str, message_id: str, body: dict[str, Any]
) -> None:
    """Change a message's content and/or metadata (merge-patch: metadata keys set to null
    are removed). Only its sender may."""
    access = access_thread(principal, thread_id)
    message = _access_own_message(access, principal, message_id)
    content = checks.check_content(body["content"]) if "content" in body else message.content
    metadata = dict(message.metadata)
    if body.get("metadata") is not None:
        patch = body["metadata"]
        if not isinstance(patch, dict):
            raise InvalidChatRequest("metadata must map strings to strings.", target="metadata")
        for key, value in patch.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value
        metadata = checks.check_metadata(metadata)
    with transaction.atomic():
        thread = access.thread
        sequence = _next_sequence(thread)
        now = timezone.now()
        ChatMessage.objects.filter(pk=message.pk).update(
            content=content, metadata=metadata, edited_at=now
        )
        message.content, message.metadata, message.edited_at = content, metadata, now
        _record(
            thread,
            sequence,
            "chatMessageEdited",
            notifications.message_event(message, edited=True),
            member_ids=access.member_ids,
        )
        notifications.publish_message(message, "edited", access.member_ids)


def delete_message(principal: TokenPrincipal, thread_id: str, message_id: str) -> None:
    """Soft-delete: the message stays in the list with deletedOn and no content."""
    access = access_thread(principal, thread_id)
    message = _access_message(access, message_id)
    if message.deleted_at is not None:
        return  # deleting twice changes nothing
    _check_sender(message, principal)
    with transaction.atomic():
        thread = access.thread
        sequence = _next_sequence(thread)
        now = timezone.now()
        ChatMessage.objects.filter(pk=message.pk).update(deleted_at=now)
        message.deleted_at = now
        _record(
            thread,
            sequence,
            "chatMessageDeleted",
            notifications.message_event(message, deleted=True),
            member_ids=access.member_ids,
        )
        notifications.publish_message(message, "deleted", access.member_ids)


# --- Read receipts and typing ----------------------------------------------------------------
def send_read_receipt(principal: TokenPrincipal, thread_id: str, body: dict[str, Any]) -> None:
    """Mark messages up to `chatMessageId` as read. A receipt for an older message than the
    participant's last one changes nothing (receipts only move forward)."""
    message_id = body.get("chatMessageId")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidChatRequest("chatMessageId is required.", target="chatMessageId")
    access = access_thread(principal, thread_id)
    message = _access_message(access, message_id)
    with transaction.atomic():
        thread = access.thread
        current = (
            ReadReceipt.objects.select_related("message")
            .filter(thread=thread, reader_raw_id=principal.raw_id)
            .first()
        )
        if current is not None and current.message.sequence_id >= message.sequence_id:
            return
        sequence = _next_sequence(thread)
        now = timezone.now()
        ReadReceipt.objects.update_or_create(
            thread=thread,
            reader_raw_id=principal.raw_id,
            defaults={"message": message, "read_at": now},
        )
        _record(
            thread,
            sequence,
            "readReceiptReceived",
            notifications.read_receipt(access.participant, message, now),
            member_ids=access.member_ids,
        )


def list_read_receipts(principal: TokenPrincipal, thread_id: str) -> QuerySet[ReadReceipt]:
    access = access_thread(principal, thread_id)
    return ReadReceipt.objects.filter(thread=access.thread).order_by("-read_at", "pk")


def send_typing(principal: TokenPrincipal, thread_id: str, body: dict[str, Any]) -> None:
    """Tell the thread the caller is typing: pushed at once, stored nowhere (ephemeral)."""
    display_name = checks.check_text(
        body.get("senderDisplayName"), "senderDisplayName", limit=checks.MAX_DISPLAY_NAME_LENGTH
    )
    access = access_thread(principal, thread_id)
    notifications.push(
        access.thread,
        None,
        "typingIndicatorReceived",
        notifications.typing(access.participant, display_name, timezone.now()),
        access.member_ids,
        at=timezone.now(),
    )


# --- Console and operators -------------------------------------------------------------------
def threads_of_resource(resource: Resource) -> QuerySet[ChatThread]:
    """A resource's threads for operators, with participant and message counts."""
    # Counted per thread shown (correlated subqueries), not by joining every message of the
    # resource's threads and grouping.
    return (
        ChatThread.objects.filter(resource=resource)
        .annotate(
            participant_count=_count_of(ChatParticipant),
            message_count=_count_of(ChatMessage),
        )
        .order_by("-created_at")
    )


def _count_of(model: Any) -> Coalesce:
    rows = model.objects.filter(thread=OuterRef("pk")).order_by().values("thread")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0)


def access_resource_thread(resource: Resource, thread_id: str) -> ChatThread:
    """A thread of `resource`, deleted or not, with its counts (operators). Raises
    ThreadNotFound, also for another resource's thread."""
    thread = threads_of_resource(resource).filter(pk=thread_id).first()
    if thread is None:
        raise ThreadNotFound(f"Chat thread {thread_id!r} was not found.")
    return thread


def find_threads_of_resource(resource: Resource, *, topic: str) -> QuerySet[ChatThread]:
    """threads_of_resource whose topic holds `topic`, in any case (all of them for "")."""
    threads = threads_of_resource(resource)
    if len(topic) > checks.MAX_TOPIC_LENGTH:
        return threads.none()  # no topic is that long
    return threads.filter(topic__icontains=topic) if topic else threads


def get_resource_thread(resource: Resource, thread_id: str) -> ChatThread:
    """A thread of `resource`, deleted or not, for the console's thread page: without the
    counts of access_resource_thread, which join every message of the thread to count them.
    Raises ThreadNotFound, also for another resource's thread or an id no thread can have."""
    thread = (
        ChatThread.objects.filter(pk=thread_id, resource=resource).first()
        if checks.is_storable(thread_id)
        else None
    )
    if thread is None:
        raise ThreadNotFound(f"Chat thread {thread_id!r} was not found.")
    thread.resource = resource
    return thread


def participants_of_resource_thread(thread: ChatThread) -> QuerySet[ChatParticipant]:
    """The thread's participants (at most MAX_PARTICIPANTS), first joined first, each with its
    identity (for its raw id)."""
    return thread.participants.select_related("identity").order_by("added_at", "id")


def messages_of_resource_thread(thread: ChatThread) -> QuerySet[ChatMessage]:
    """Every message of the thread, system messages and deleted ones too, newest first: the
    order of the (thread, -created_at, -id) index, so a page of a long thread reads only its
    rows. (Sequence order but for messages sent within the same few milliseconds: a message
    reads the time just before it waits for the thread's row lock.)"""
    return ChatMessage.objects.filter(thread=thread).order_by("-created_at", "-id")


def participant_body(participant: ChatParticipant, *, metadata: bool = False) -> dict[str, Any]:
    """ChatParticipant in the REST shape; with its `metadata` for api-version 2025-03-15."""
    body: dict[str, Any] = {
        "communicationIdentifier": identifier_model(
            notifications.raw_id(participant.thread.resource_id, participant.identity_id)
        ),
        "displayName": participant.display_name,
    }
    if participant.share_history_time is not None:
        body["shareHistoryTime"] = notifications.rfc3339(participant.share_history_time)
    if metadata:
        body["metadata"] = participant.metadata
    return body
