"""Call Automation's rules, the app's public API: incoming calls offered to the application,
call connections (create, answer, redirect, reject, hang up, terminate), participants, media
operations, recordings and media streaming. The API views, the console, the signaling hooks and
the media process all call these, as `services.<name>`.

One module per concept:
- calls.py: incoming calls, calls the application places, call connections, participants, the
  hooks from signaling;
- media_operations.py: play, recognize (DTMF and by speech), send DTMF, cancel, hold;
- recordings.py: recordings and their files;
- media_streaming.py: streaming a call's audio to the application;
- shared.py: what several of them use (request checks, the media plane's liveness, a live
  connection's participants).

A call the application is in has topology `bridge`: the legs' media meets in a Janus
AudioBridge room that the media process (apps/automation/media.py) holds. Requests here change
rows and tell the media process (apps/calls/media_link.py); what happens on the media plane
comes back as callbacks (apps/automation/callbacks.py), which go out in order per connection.
"""

from __future__ import annotations

from apps.accounts import services as accounts
from apps.automation.services.calls import (
    CONTEXT_SALT,
    END_TERMINATED,
    MAX_CONTEXT_LENGTH,
    REJECT_CODES,
    access_connection,
    add_participant,
    answer,
    answer_with_built_in_ivr,
    call_ended,
    cancel_add_participant,
    connect,
    create_call,
    dial_phone,
    disconnect,
    hang_up,
    leg_ended,
    list_connections,
    media_joined,
    mute,
    offer_incoming_call,
    participant_body,
    redirect,
    reject,
    remember_invitation,
    remove_participant,
    take_invitation,
    terminate,
    transfer,
)
from apps.automation.services.media_operations import (
    DEFAULT_END_SILENCE_MS,
    MAX_CHOICE_SILENCE,
    MAX_CHOICES,
    MAX_END_SILENCE_MS,
    MAX_PHRASE_LENGTH,
    MAX_PHRASES,
    MAX_PLAY_SOURCES,
    MAX_PLAY_TO,
    MAX_TEXT_LENGTH,
    MAX_TONES,
    PHRASE_REFUSED,
    SPEECH_LANGUAGES,
    TONE_KEYS,
    TONE_NAMES,
    cancel_all,
    check_play_source,
    hold,
    play,
    recognize,
    send_dtmf,
    set_continuous_dtmf,
)
from apps.automation.services.media_streaming import (
    AUDIO_FORMATS,
    check_media_streaming_options,
    media_streaming_ended,
    media_streaming_plans,
    media_streaming_started,
    set_media_streaming,
    streaming_due,
    streaming_subscription,
)
from apps.automation.services.recordings import (
    MAX_RECORDING_CHANNELS,
    access_recording,
    delete_recording_file,
    prune_recordings,
    recording_channel,
    recording_path,
    set_recording_state,
    start_recording,
)
from apps.automation.services.shared import (
    MAX_OPERATION_CONTEXT,
    MEDIA_ALIVE_KEY,
    access_participant,
    application_raw_id,
    media_available,
    participants,
)

__all__ = [
    "AUDIO_FORMATS",
    "CONTEXT_SALT",
    "DEFAULT_END_SILENCE_MS",
    "END_TERMINATED",
    "MAX_CHOICES",
    "MAX_CHOICE_SILENCE",
    "MAX_CONTEXT_LENGTH",
    "MAX_END_SILENCE_MS",
    "MAX_OPERATION_CONTEXT",
    "MAX_PHRASES",
    "MAX_PHRASE_LENGTH",
    "MAX_PLAY_SOURCES",
    "MAX_PLAY_TO",
    "MAX_RECORDING_CHANNELS",
    "MAX_TEXT_LENGTH",
    "MAX_TONES",
    "MEDIA_ALIVE_KEY",
    "PHRASE_REFUSED",
    "REJECT_CODES",
    "SPEECH_LANGUAGES",
    "TONE_KEYS",
    "TONE_NAMES",
    "access_connection",
    "access_participant",
    "access_recording",
    "accounts",
    "add_participant",
    "answer",
    "answer_with_built_in_ivr",
    "application_raw_id",
    "call_ended",
    "dial_phone",
    "cancel_add_participant",
    "cancel_all",
    "check_media_streaming_options",
    "check_play_source",
    "connect",
    "create_call",
    "delete_recording_file",
    "disconnect",
    "hang_up",
    "hold",
    "leg_ended",
    "list_connections",
    "media_available",
    "media_joined",
    "media_streaming_ended",
    "media_streaming_plans",
    "media_streaming_started",
    "mute",
    "offer_incoming_call",
    "participant_body",
    "participants",
    "play",
    "prune_recordings",
    "recognize",
    "recording_channel",
    "recording_path",
    "redirect",
    "reject",
    "remember_invitation",
    "remove_participant",
    "send_dtmf",
    "set_continuous_dtmf",
    "set_media_streaming",
    "set_recording_state",
    "start_recording",
    "streaming_due",
    "streaming_subscription",
    "take_invitation",
    "terminate",
    "transfer",
]
