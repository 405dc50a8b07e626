"""Console Call Automation pages through Django's test client: Automation (call connections and
a connection's timeline), Recordings (with the player's file, Range and tenant isolation) and
Try IVR with its token endpoint. Then the built-in IVR behind Try IVR (apps/automation/ivr.py),
driven by the callbacks it is handed. Records are made directly: the pages only read them."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, IncomingCalls, Resource, Role
from apps.automation import callbacks, ivr, services
from apps.automation.models import (
    Callback,
    CallbackState,
    CallConnection,
    ConnectionState,
    MediaOperation,
    OperationKind,
    OperationState,
    Recording,
    RecordingState,
)
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
    CallTopology,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
AUDIO = bytes(range(256)) * 40  # 10,240 bytes of "audio"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member(resource: Resource, make_user: Any, role: str) -> Client:
    user = make_user(f"{role}-member")
    accounts.add_member(resource, user.username, role)
    return signed_in(user)


def make_call(resource: Resource, *, live: bool = False) -> Call:
    caller, _ = accounts.create_identity(resource)
    call = Call.objects.create(
        resource=resource,
        kind=CallKind.GROUP,
        topology=CallTopology.BRIDGE,
        caller_raw_id=caller.raw_id,
        state=CallState.CONNECTED if live else CallState.DISCONNECTED,
        created_at=NOW,
        connected_at=NOW,
        ended_at=None if live else NOW + timedelta(seconds=30),
    )
    CallParticipant.objects.create(
        call=call,
        raw_id=caller.raw_id,
        is_caller=True,
        state=CallLegState.CONNECTED if live else CallLegState.LEFT,
        joined_at=NOW,
    )
    return call


def make_connection(
    resource: Resource, *, live: bool = False, built_in: bool = True, started: Any = NOW
) -> CallConnection:
    call = make_call(resource, live=live)
    return CallConnection.objects.create(
        resource=resource,
        call=call,
        callback_uri=callbacks.BUILT_IN_IVR_URI if built_in else "https://app.example/callbacks",
        source_raw_id=f"8:acs:{resource.pk}_{uuid.uuid4()}",
        state=ConnectionState.CONNECTED if live else ConnectionState.DISCONNECTED,
        created_at=started,
        connected_at=started + timedelta(seconds=1),
        ended_at=None if live else started + timedelta(seconds=30),
        end_reason="" if live else "Ended by the application.",
    )


def add_operation(connection: CallConnection, at: float, **fields: Any) -> MediaOperation:
    defaults: dict[str, Any] = {
        "kind": OperationKind.PLAY,
        "state": OperationState.COMPLETED,
        "created_at": connection.created_at + timedelta(seconds=at),
        "started_at": connection.created_at + timedelta(seconds=at),
        "ended_at": connection.created_at + timedelta(seconds=at + 2),
    }
    return MediaOperation.objects.create(connection=connection, **{**defaults, **fields})


def add_callback(connection: CallConnection, seq: int, name: str, at: float, **fields: Any) -> Any:
    when = connection.created_at + timedelta(seconds=at)
    defaults: dict[str, Any] = {
        "url": connection.callback_uri,
        "state": CallbackState.DELIVERED,
        "attempt_count": 1,
        "last_status_code": 200,
        "delivered_at": when,
        "data": {"callConnectionId": str(connection.pk)},
    }
    return Callback.objects.create(
        connection=connection,
        seq=seq,
        event_type=callbacks.PREFIX + name,
        created_at=when,
        next_attempt_at=when,
        **{**defaults, **fields},
    )


@pytest.fixture
def recordings_dir(settings: Any, tmp_path: Path) -> Path:
    settings.RECORDINGS_DIR = tmp_path
    return tmp_path


def make_recording(
    resource: Resource, folder: Path, *, content: bytes | None = AUDIO, **fields: Any
) -> Recording:
    connection = make_connection(resource)
    recording_id = uuid.uuid4().hex
    name = f"{recording_id}.wav" if content is not None else "-"
    if content is not None:
        (folder / name).write_bytes(content)
    defaults: dict[str, Any] = {
        "state": RecordingState.STOPPED,
        "file_name": name,
        "size_bytes": len(content or b""),
        "started_at": NOW,
        "stopped_at": NOW + timedelta(seconds=20),
    }
    return Recording.objects.create(
        id=recording_id,
        resource=resource,
        call=connection.call,
        connection=connection,
        **{**defaults, **fields},
    )


def file_url(resource: Resource, recording: Recording) -> str:
    return f"/resources/{resource.slug}/calls/recordings/{recording.pk}/file/"


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- Tabs and access -------------------------------------------------------------------------
PAGES = ("automation", "recordings", "ivr")


@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_member_sees_the_automation_pages_with_their_tabs(
    resource: Resource, make_user: Any, role: str
) -> None:
    # given
    client = member(resource, make_user, role)

    # when
    pages = {name: client.get(f"/resources/{resource.slug}/calls/{name}/") for name in PAGES}

    # then
    for name, page in pages.items():
        assert page.status_code == 200, name
        html = page.content.decode()
        assert 'class="active">Calls</a>' in html
        for label in ("Call log", "Automation", "Recordings", "Try IVR"):
            assert f">{label}</a>" in html
    assert 'class="active">Automation</a>' in pages["automation"].content.decode()
    assert 'class="active">Try IVR</a>' in pages["ivr"].content.decode()


def test_the_call_log_shows_the_new_tabs(resource: Resource, owner: Any) -> None:
    # when
    page = signed_in(owner).get(f"/resources/{resource.slug}/calls/")

    # then
    assert f'href="/resources/{resource.slug}/calls/recordings/"' in page.content.decode()


def test_a_stranger_gets_not_found_everywhere(
    resource: Resource, make_user: Any, recordings_dir: Path
) -> None:
    # given a connection and a recording of the resource, and a signed-in stranger
    connection = make_connection(resource)
    recording = make_recording(resource, recordings_dir)
    stranger = signed_in(make_user("stranger"))
    base = f"/resources/{resource.slug}/calls"

    # when
    paths = [f"{base}/{name}/" for name in PAGES] + [
        f"{base}/automation/{connection.pk}/",
        file_url(resource, recording),
    ]

    # then
    for path in paths:
        assert stranger.get(path).status_code == 404, path
    answer = stranger.post(f"{base}/ivr/token/", "{}", content_type="application/json")
    assert answer.status_code == 404
    assert not CommunicationIdentity.objects.filter(
        resource=resource, incoming_calls=IncomingCalls.BUILT_IN_IVR
    ).exists()


def test_signed_out_visitors_are_sent_to_sign_in(resource: Resource) -> None:
    # when
    page = Client().get(f"/resources/{resource.slug}/calls/automation/")

    # then
    assert page.status_code == 302 and "/login" in page["Location"]


# --- Automation ------------------------------------------------------------------------------
def test_connections_are_listed_newest_first_with_their_counts(
    resource: Resource, owner: Any, other_resource: Resource
) -> None:
    # given two connections of the resource and one of another
    older = make_connection(resource, started=NOW - timedelta(hours=1), built_in=False)
    newer = make_connection(resource, live=True)
    add_operation(newer, 2)
    add_callback(newer, 1, "CallConnected", 1)
    add_callback(newer, 2, "PlayCompleted", 4)
    theirs = make_connection(other_resource)

    # when
    html = signed_in(owner).get(f"/resources/{resource.slug}/calls/automation/").content.decode()

    # then
    assert html.index(str(newer.pk)) < html.index(str(older.pk))
    assert str(theirs.pk) not in html
    assert "Built-in IVR" in html and "https://app.example/callbacks" in html
    row = html[html.index(f'data-connection="{newer.pk}"') :].split("</tr>")[0]
    assert '<td class="count operations">1</td>' in row
    assert '<td class="count callbacks">2</td>' in row


def test_the_connection_list_pages(resource: Resource, owner: Any) -> None:
    # given more connections than a page holds
    for n in range(27):
        make_connection(resource, started=NOW - timedelta(minutes=n))

    # when
    first = signed_in(owner).get(f"/resources/{resource.slug}/calls/automation/")
    second = signed_in(owner).get(f"/resources/{resource.slug}/calls/automation/?page=2")

    # then
    assert first.content.decode().count('class="connection"') == 25
    assert second.content.decode().count('class="connection"') == 2
    assert "Page 1 of 2" in first.content.decode()


def test_the_timeline_merges_operations_and_callbacks_in_time_order(
    resource: Resource, owner: Any, recordings_dir: Path
) -> None:
    # given a connection with a recognize, a play and their callbacks
    connection = make_connection(resource)
    add_callback(connection, 1, "CallConnected", 1)
    recognize = add_operation(
        connection,
        1.5,
        kind=OperationKind.RECOGNIZE,
        operation_context="menu",
        result_code=200,
        result_subcode=8514,
        result_message="Action completed, max digits received.",
        tones=["one"],
    )
    add_callback(connection, 2, "RecognizeCompleted", 6)
    play = add_operation(connection, 6.5, operation_context="branch")
    add_callback(
        connection,
        3,
        "PlayCompleted",
        9,
        state=CallbackState.PENDING,
        attempt_count=2,
        last_status_code=None,
        last_error="Connection refused",
        delivered_at=None,
    )

    # when
    page = signed_in(owner).get(f"/resources/{resource.slug}/calls/automation/{connection.pk}/")

    # then
    assert page.status_code == 200
    html = page.content.decode()
    order = [
        "Created",
        "CallConnected",
        f'data-id="{recognize.pk}"',
        "RecognizeCompleted",
        f'data-id="{play.pk}"',
        "PlayCompleted",
        "Disconnected",
    ]
    positions = [html.index(marker, html.index('id="timeline"')) for marker in order]
    assert positions == sorted(positions)
    assert "8514" in html and "Action completed, max digits received." in html
    assert '<dd class="tones">one</dd>' in html
    assert "Connection refused" in html and "Callback #3" in html
    assert "+6.000 s" in html
    assert f'href="/resources/{resource.slug}/logs/"' in html
    assert "2 media operations, 3 callbacks" in html


def test_the_timeline_page_reads_a_fixed_number_of_queries(
    resource: Resource, owner: Any, django_assert_max_num_queries: Any
) -> None:
    # given a connection with many steps
    connection = make_connection(resource)
    for n in range(10):
        add_operation(connection, n)
        add_callback(connection, n + 1, "PlayCompleted", n + 0.5)
    client = signed_in(owner)

    # then: the session, the user, the resource and its roles, and one read per kind of step
    with django_assert_max_num_queries(15):
        client.get(f"/resources/{resource.slug}/calls/automation/{connection.pk}/")


def test_another_resources_connection_or_a_bad_id_is_not_found(
    resource: Resource, owner: Any, other_resource: Resource
) -> None:
    # given
    theirs = make_connection(other_resource)
    client = signed_in(owner)
    base = f"/resources/{resource.slug}/calls/automation"

    # then
    assert client.get(f"{base}/{theirs.pk}/").status_code == 404
    assert client.get(f"{base}/not-a-uuid/").status_code == 404


# --- Recordings ------------------------------------------------------------------------------
def test_recordings_list_shows_a_player_and_says_why_a_file_cannot_play(
    resource: Resource, owner: Any, recordings_dir: Path
) -> None:
    # given a ready recording, a deleted one, one whose file is gone, an empty one and a live one
    ready = make_recording(resource, recordings_dir)
    deleted = make_recording(resource, recordings_dir, deleted_at=NOW)
    missing = make_recording(resource, recordings_dir)
    (recordings_dir / missing.file_name).unlink()
    empty = make_recording(resource, recordings_dir, content=None)
    live = make_recording(
        resource, recordings_dir, state=RecordingState.ACTIVE, file_name="", stopped_at=None
    )
    unmixed = make_recording(resource, recordings_dir)
    Recording.objects.filter(pk=unmixed.pk).update(
        channel_type="unmixed",
        channels=[
            {"channel": 0, "participant": "8:acs:caller"},
            {"channel": 1, "participant": "8:acs:agent"},
        ],
    )

    # when
    html = signed_in(owner).get(f"/resources/{resource.slug}/calls/recordings/").content.decode()

    # then
    def row(recording: Recording) -> str:
        return html[html.index(f'data-recording="{recording.pk}"') :].split("</tr>")[0]

    url = file_url(resource, ready)
    assert f'<audio controls preload="none" src="{url}">' in row(ready)
    assert f'href="{url}?download=1"' in row(ready) and "10.0\xa0KB" in row(ready)
    assert "Deleted" in row(deleted) and "<audio" not in row(deleted)
    assert "missing from where recordings are kept" in row(missing)
    assert "Nothing was recorded" in row(empty)
    assert "Recording…" in row(live)
    assert "Unmixed: channel 0 <code" in row(unmixed) and "8:acs:agent" in row(unmixed)
    assert "Unmixed" not in row(ready)


def test_a_recording_downloads_whole_or_by_range(
    resource: Resource, owner: Any, recordings_dir: Path
) -> None:
    # given
    recording = make_recording(resource, recordings_dir)
    client = signed_in(owner)
    url = file_url(resource, recording)

    # when the whole file is asked for, then as a download
    whole = client.get(url)
    download = client.get(f"{url}?download=1")

    # then
    assert whole.status_code == 200 and body_of(whole) == AUDIO
    assert whole["Content-Type"] == "audio/wav" and whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Disposition"].startswith("inline")
    assert download["Content-Disposition"].startswith("attachment")
    assert f"recording-{recording.pk}.wav" in download["Content-Disposition"]

    # when byte ranges are asked for (as a browser's player seeks)
    middle = client.get(url, HTTP_RANGE="bytes=100-199")
    rest = client.get(url, HTTP_RANGE="bytes=10000-")
    tail = client.get(url, HTTP_RANGE="bytes=-40")
    beyond = client.get(url, HTTP_RANGE="bytes=20000-")

    # then each gets 206 with exactly those bytes, and a range past the end 416
    assert middle.status_code == 206 and body_of(middle) == AUDIO[100:200]
    assert middle["Content-Range"] == f"bytes 100-199/{len(AUDIO)}"
    assert middle["Content-Length"] == "100"
    assert rest.status_code == 206 and body_of(rest) == AUDIO[10000:]
    assert tail.status_code == 206 and body_of(tail) == AUDIO[-40:]
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(AUDIO)}"


def test_another_tenant_cannot_download_a_recording(
    resource: Resource, other_resource: Resource, make_user: Any, recordings_dir: Path
) -> None:
    # given a recording of the resource, and the owner of another resource
    recording = make_recording(resource, recordings_dir)
    other_owner = other_resource.memberships.get().user
    client = signed_in(other_owner)

    # when they ask for it, through their own resource or through the recording's
    theirs = client.get(file_url(other_resource, recording), HTTP_RANGE="bytes=0-9")
    ours = client.get(file_url(resource, recording))

    # then neither gives a byte
    assert theirs.status_code == 404 and ours.status_code == 404
    assert AUDIO[:10] not in theirs.content and AUDIO[:10] not in ours.content


def test_a_deleted_or_missing_recording_file_is_not_found(
    resource: Resource, owner: Any, recordings_dir: Path
) -> None:
    # given
    deleted = make_recording(resource, recordings_dir, deleted_at=NOW)
    missing = make_recording(resource, recordings_dir)
    (recordings_dir / missing.file_name).unlink()
    client = signed_in(owner)

    # when
    gone = client.get(file_url(resource, deleted))
    lost = client.get(file_url(resource, missing))

    # then
    assert gone.status_code == 404 and lost.status_code == 404
    assert "missing from where recordings are kept" in lost.content.decode()


# --- Try IVR ---------------------------------------------------------------------------------
def ask_ivr_token(client: Client, resource: Resource) -> Any:
    return client.post(
        f"/resources/{resource.slug}/calls/ivr/token/", "{}", content_type="application/json"
    )


def test_try_ivr_says_when_the_media_plane_is_down(resource: Resource, owner: Any) -> None:
    # given no media process
    cache.delete(services.MEDIA_ALIVE_KEY)

    # when
    down = signed_in(owner).get(f"/resources/{resource.slug}/calls/ivr/").content.decode()
    cache.set(services.MEDIA_ALIVE_KEY, 1, 60)
    up = signed_in(owner).get(f"/resources/{resource.slug}/calls/ivr/").content.decode()
    cache.delete(services.MEDIA_ALIVE_KEY)

    # then
    assert 'id="media-unavailable"' in down and "The media plane is not running" in down
    assert 'id="media-unavailable"' not in up
    for html in (down, up):
        assert "calling/spool-calling.js" in html and "console/calls_ivr.js" in html
        assert html.count('data-tone="') == 12 and 'data-tone="Pound"' in html


def test_the_ivr_token_makes_the_two_identities_once(resource: Resource, owner: Any) -> None:
    # given
    client = signed_in(owner)

    # when the page signs in twice (a reload, a renewal)
    first = ask_ivr_token(client, resource).json()
    second = ask_ivr_token(client, resource).json()

    # then the same caller and IVR line, the line answered by the built-in IVR
    assert first["identity"] == second["identity"] and first["line"] == second["line"]
    assert first["token"] and first["expiresOn"].endswith("Z")
    line = accounts.access_identity(resource, first["line"])
    caller = accounts.access_identity(resource, first["identity"])
    assert line.incoming_calls == IncomingCalls.BUILT_IN_IVR
    assert caller.incoming_calls == IncomingCalls.CLIENT
    assert CommunicationIdentity.objects.filter(resource=resource).count() == 2
    page = client.get(f"/resources/{resource.slug}/calls/ivr/").content.decode()
    assert first["line"] in page and first["identity"] in page


def test_the_ivr_token_replaces_a_deleted_identity(resource: Resource, owner: Any) -> None:
    # given the page's identities, and the IVR line deleted since
    client = signed_in(owner)
    first = ask_ivr_token(client, resource).json()
    accounts.delete_identity(accounts.access_identity(resource, first["line"]))

    # when
    second = ask_ivr_token(client, resource).json()

    # then a new line, the same caller
    assert second["line"] != first["line"] and second["identity"] == first["identity"]
    assert accounts.access_identity(resource, second["line"]).incoming_calls == "ivr"


def test_a_reader_cannot_get_an_ivr_token(resource: Resource, make_user: Any) -> None:
    # given
    client = member(resource, make_user, Role.READER)

    # when
    page = client.get(f"/resources/{resource.slug}/calls/ivr/").content.decode()
    answer = ask_ivr_token(client, resource)

    # then
    assert 'id="calls-not-allowed"' in page and 'id="ivr-call"' not in page
    assert answer.status_code == 403
    assert not CommunicationIdentity.objects.filter(resource=resource).exists()


def test_the_ivr_token_needs_a_session(resource: Resource) -> None:
    # when
    answer = ask_ivr_token(Client(), resource)

    # then
    assert answer.status_code == 401
    assert json.loads(answer.content)["error"]["code"] == "Unauthorized"


# --- The built-in IVR ------------------------------------------------------------------------
def event(connection: CallConnection, name: str, **data: Any) -> dict[str, Any]:
    return {
        "type": callbacks.PREFIX + name,
        "data": {
            "callConnectionId": str(connection.pk),
            "serverCallId": str(connection.call_id),
            **data,
        },
    }


def spoken(operation: MediaOperation) -> str:
    sources = operation.request.get("sources") or operation.request.get("prompts")
    return str(sources[0]["text"])


def test_the_ivr_records_and_asks_for_a_key_when_connected(resource: Resource) -> None:
    # given a connected call held by the built-in IVR
    connection = make_connection(resource, live=True)

    # when
    ivr.handle(event(connection, "CallConnected"))
    ivr.handle(event(connection, "CallConnected"))  # a redelivery does nothing more

    # then the call is recorded, and one recognize asks the caller for one key
    recording = Recording.objects.get(call=connection.call)
    assert recording.state == RecordingState.ACTIVE and recording.connection == connection
    menu = MediaOperation.objects.get(connection=connection)
    assert menu.kind == OperationKind.RECOGNIZE and menu.operation_context == "menu"
    assert menu.request["target"] == connection.call.caller_raw_id
    assert menu.request["maxTones"] == 1 and menu.request["interruptPrompt"] is True
    assert menu.request["initialSilenceSeconds"] == 10
    assert spoken(menu).startswith("Welcome to Spool. Press 1")


@pytest.mark.parametrize(
    ("tones", "says"),
    [(["one"], "Hello from Spool"), (["two"], "The time is"), (["nine"], "Sorry")],
)
def test_the_ivr_answers_each_key(resource: Resource, tones: list[str], says: str) -> None:
    # given
    connection = make_connection(resource, live=True)

    # when
    ivr.handle(
        event(
            connection,
            "RecognizeCompleted",
            operationContext="menu",
            dtmfResult={"tones": tones},
            resultInformation={"code": 200, "subCode": 8514, "message": "ok"},
        )
    )

    # then
    play = MediaOperation.objects.get(connection=connection)
    assert play.kind == OperationKind.PLAY and play.operation_context == "branch"
    assert spoken(play).startswith(says)


def test_the_ivr_says_goodbye_when_no_key_comes(resource: Resource) -> None:
    # given
    connection = make_connection(resource, live=True)

    # when
    ivr.handle(event(connection, "RecognizeFailed", operationContext="menu"))

    # then
    play = MediaOperation.objects.get(connection=connection)
    assert play.operation_context == "branch" and spoken(play) == "Goodbye."


def test_the_ivr_hangs_up_after_its_answer(resource: Resource) -> None:
    # given a connection whose branch was just played
    connection = make_connection(resource, live=True)

    # when
    ivr.handle(event(connection, "PlayCompleted", operationContext="branch"))

    # then the call ended for everyone
    connection.refresh_from_db()
    connection.call.refresh_from_db()
    assert connection.state == ConnectionState.DISCONNECTED
    assert connection.call.ended_at is not None and connection.call.end_code == 0


def test_the_ivr_never_raises(resource: Resource) -> None:
    # given a connection whose caller has left (recognize cannot target them)
    connection = make_connection(resource, live=True)
    CallParticipant.objects.filter(call=connection.call).update(state=CallLegState.LEFT)

    # when / then: logged, not raised (a raise would retry the callback)
    ivr.handle(event(connection, "CallConnected"))
    ivr.handle({"type": "nonsense"})
    ivr.handle(event(connection, "ParticipantsUpdated"))
    assert not MediaOperation.objects.filter(connection=connection).exists()


def test_a_disconnected_connection_is_left_alone(resource: Resource) -> None:
    # given
    connection = make_connection(resource, live=False)

    # when
    ivr.handle(event(connection, "RecognizeFailed", operationContext="menu"))

    # then
    assert not MediaOperation.objects.filter(connection=connection).exists()
