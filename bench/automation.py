"""Call Automation on the media plane: how fast an application's first prompt is heard, how fast
a key press becomes RecognizeCompleted, and how many automated calls one box holds, beside the
bare engine (Janus AudioBridge driven directly) doing the same work in the same run.

(a) Answer to first prompt audio: a Python call agent (apps/calls/agent.py) rings an identity
routed to the application; the application (the official Python SDK in this process, with a
callback receiver and an Event Grid receiver on 127.0.0.1) answers the IncomingCall, and on
CallConnected plays a spoken prompt (TextSource, already spoken once, so cached). Timed from
the answer request until the caller's first audio frame with sound in it. Ceiling: an aiortc
peer joins an AudioBridge room through apps/automation/bridge.py and the same prompt file is
played at once; timed from the join until its first frame with sound.

(b) DTMF to RecognizeCompleted: on the same kind of call the application starts a DTMF
recognize (one key); the agent presses a key; timed from the key press until the
RecognizeCompleted callback reaches the application's receiver.

(c) Concurrent automated calls: N callers at once, each answered, recorded, playing a looped
prompt and listening for DTMF (a recognize with a long timeout). Over a fixed window: the CPU
of Janus, the media process, the web and worker processes (% of one core, per call), and the
audio each caller receives (frames/s; 50 is all of it). The same N rooms driven bare (one
aiortc peer each, the prompt looped with play_file, the room recorded): Janus's CPU per call.
N steps up until a caller hears less than 90% of its frames or the step limit.

    .venv/bin/python bench/automation.py [--calls 20] [--steps 2,5,10,20] [--seconds 10]
        [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py); --smoke is the CI-safe run: 1 call, one step of 1 call, 1 s windows.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402

from apps.calls.agent import CallAgent, ToneTrack, offer_loopback  # noqa: E402
from bench import bench_results, tokens  # noqa: E402
from bench.calls import cpu_seconds  # noqa: E402
from bench.chat import finite, percentile  # noqa: E402

PROMPT = "Welcome to Spool. Press one for sales, two for support."
LOUD = 1000  # a frame whose peak is above this carries sound
FULL_RATE = 50.0  # frames/s of 20 ms audio


def peak(frame: Any) -> int:
    samples = array.array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


class ListeningAgent(CallAgent):
    """A call agent that notes when it first hears sound, and counts frames per second."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heard_at: float | None = None

    async def _count(self, key: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames_received += 1
            if self.heard_at is None and peak(frame) > LOUD:
                self.heard_at = time.perf_counter()


class App:
    """The application: an Event Grid receiver (IncomingCall) and a callback receiver."""

    def __init__(self, conftest: Any, live: Any, connection: str) -> None:
        from azure.communication.callautomation import CallAutomationClient

        from tests.events.conftest import Receiver

        self.events, self.callbacks = Receiver(), Receiver()
        self.events.start()
        self.callbacks.start()
        slug = live.slug_of(connection)
        live.manage(
            "shell",
            "-c",
            "from apps.accounts.models import Resource; from apps.events import services; "
            f"s = services.create_subscription(Resource.objects.get(slug='{slug}'), name='bench', "
            f"endpoint_url='{self.events.url}', event_types=['Microsoft.Communication.IncomingCall']); "
            "services.validate_subscription(s.pk)",
        )
        self.client = CallAutomationClient.from_connection_string(
            connection, connection_verify=live.cert
        )
        self.seen_events = 0

    def stop(self) -> None:
        self.events.stop()
        self.callbacks.stop()

    async def incoming(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            notifications = self.events.notifications
            if len(notifications) > self.seen_events:
                self.seen_events += 1
                return dict(notifications[self.seen_events - 1].json[0]["data"])
            await asyncio.sleep(0.002)
        raise TimeoutError("no IncomingCall")

    async def callback(self, connection_id: str, name: str, timeout: float = 30) -> float:
        """When the connection's callback `name` arrived (perf_counter, polled every 2 ms)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            received = self.callbacks.received
            for item in received[seen:]:
                for event in json.loads(item.body):
                    data = event["data"]
                    if (
                        event["type"].endswith("." + name)
                        and data["callConnectionId"] == connection_id
                    ):
                        return time.perf_counter()
            seen = len(received)
            await asyncio.sleep(0.002)
        raise TimeoutError(f"no {name}")


def route_line(live: Any, raw_id: str) -> None:
    live.manage(
        "shell",
        "-c",
        "from apps.accounts.models import CommunicationIdentity; CommunicationIdentity.objects."
        f"filter(pk='{raw_id.rsplit('_', 1)[-1]}').update(incoming_calls='application')",
    )


def voip_user(live: Any, connection: str) -> tuple[str, str]:
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    user, token = client.create_user_and_token(["voip"])
    return user.properties["id"], token.token


async def answered(app: App, agent: CallAgent, line: str) -> tuple[Any, float]:
    """Ring the line; the application answers. Returns (call connection client, answer time)."""
    await agent.call(line)
    incoming = await app.incoming()
    started = time.perf_counter()
    properties = await asyncio.to_thread(
        app.client.answer_call, incoming["incomingCallContext"], app.callbacks.url
    )
    return app.client.get_call_connection(properties.call_connection_id), started


# --- (a) and (b): latencies ----------------------------------------------------------------------
async def measure_latencies(
    app: App, socket_url: str, token: str, line: str, calls: int
) -> dict[str, list[float]]:
    from azure.communication.callautomation import RecognizeInputType, TextSource
    from azure.communication.identity import CommunicationUserIdentifier

    prompt, dtmf = [], []
    for n in range(calls + 1):  # the first call speaks the prompt once (then it is cached)
        agent = ListeningAgent(socket_url, token)
        await agent.connect()
        try:
            call, started = await answered(app, agent, line)
            connection_id = call._call_connection_id
            await app.callback(connection_id, "CallConnected")
            await asyncio.to_thread(call.play_media, [TextSource(text=PROMPT)])
            while agent.heard_at is None and time.perf_counter() - started < 30:
                await asyncio.sleep(0.002)
            if agent.heard_at is not None and n:
                prompt.append((agent.heard_at - started) * 1000)
            await asyncio.to_thread(
                call.start_recognizing_media,
                input_type=RecognizeInputType.DTMF,
                target_participant=CommunicationUserIdentifier(agent.raw_id),
                dtmf_max_tones_to_collect=1,
                initial_silence_timeout=30,
                interrupt_call_media_operation=True,
            )
            await asyncio.sleep(0.3)
            pressed = time.perf_counter()
            await agent.send_dtmf("1")
            completed = await app.callback(connection_id, "RecognizeCompleted")
            if n:
                dtmf.append((completed - pressed) * 1000)
            await agent.hang_up()
            await agent.wait_state("Disconnected")
        finally:
            await agent.close()
    return {"prompt": prompt, "dtmf": dtmf}


async def listen(track: MediaStreamTrack, heard: dict[str, float]) -> None:
    """Note in `heard["at"]` when the track first carries sound."""
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        if "at" not in heard and peak(frame) > LOUD:
            heard["at"] = time.perf_counter()


async def bare_prompt_latency(janus_url: str, prompt: Path, calls: int) -> list[float]:
    """An aiortc peer joins an AudioBridge room; the prompt is played at once."""
    from apps.automation.bridge import AudioBridgeRoom

    times = []
    for _ in range(calls):

        async def nothing(event: dict[str, Any]) -> None:
            pass

        room = AudioBridgeRoom(janus_url, f"bench-{uuid.uuid4().hex[:8]}", nothing)
        await room.open()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(Silence())
        heard: dict[str, float] = {}

        pc.on("track", lambda track, heard=heard: asyncio.ensure_future(listen(track, heard)))

        started = time.perf_counter()
        await pc.setLocalDescription(await pc.createOffer())
        answer = await room.join("bench-peer", {"type": "offer", "sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await room.play(prompt, "prompt")
        while "at" not in heard and time.perf_counter() - started < 30:
            await asyncio.sleep(0.002)
        if "at" in heard:
            times.append((heard["at"] - started) * 1000)
        await pc.close()
        await room.close()
    return times


class Silence(MediaStreamTrack):
    """Silent 20 ms frames: the peer's own audio never counts as the prompt."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.tone = ToneTrack(440.0)

    async def recv(self) -> Any:
        frame = await self.tone.recv()
        frame.planes[0].update(bytes(len(bytes(frame.planes[0]))))
        return frame


# --- (c): concurrent calls -----------------------------------------------------------------------
def server_pids(root_pid: int) -> dict[str, list[int]]:
    import psutil

    groups: dict[str, list[int]] = {"janus": [], "media": [], "web": [], "workers": []}
    for child in psutil.Process(root_pid).children(recursive=True):
        line = " ".join(child.cmdline())
        if "janus" in line.split(" ")[0]:
            groups["janus"].append(child.pid)
        elif " media" in f" {line}" and "manage.py" in line:
            groups["media"].append(child.pid)
        elif "runweb" in line:
            groups["web"].append(child.pid)
        elif "celery" in line:
            groups["workers"].append(child.pid)
    return groups


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


async def measure_concurrent(
    app: App, live: Any, socket_url: str, users: list[tuple[str, str]], line: str, seconds: float
) -> dict[str, Any]:
    from azure.communication.callautomation import RecognizeInputType, TextSource
    from azure.communication.identity import CommunicationUserIdentifier

    agents = [ListeningAgent(socket_url, token) for _, token in users]
    calls = []
    try:
        for agent in agents:
            await agent.connect()
            call, _ = await answered(app, agent, line)
            await app.callback(call._call_connection_id, "CallConnected")
            server_call = (await asyncio.to_thread(call.get_call_properties)).server_call_id
            await asyncio.to_thread(app.client.start_recording, server_call_id=server_call)
            await asyncio.to_thread(call.play_media, [TextSource(text=PROMPT)], loop=True)
            await asyncio.to_thread(
                call.start_recognizing_media,
                input_type=RecognizeInputType.DTMF,
                target_participant=CommunicationUserIdentifier(agent.raw_id),
                dtmf_max_tones_to_collect=1,
                initial_silence_timeout=300,
            )
            calls.append(call)
        await asyncio.sleep(2)  # warm up
        groups = server_pids(live.process.pid)
        before = {name: cpu_of(pids) for name, pids in groups.items()}
        frames_before = [agent.frames_received for agent in agents]
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu = {name: (cpu_of(groups[name]) - before[name]) / elapsed * 100 for name in groups}
        rates = [
            (a.frames_received - f) / elapsed for a, f in zip(agents, frames_before, strict=True)
        ]
        for call in calls:
            await asyncio.to_thread(call.hang_up, True)
    finally:
        for agent in agents:
            await agent.close()
    return {"cpu_percent": cpu, "rates": rates}


async def bare_concurrent(
    janus_url: str, janus_pid: int, prompt: Path, record_dir: Path, n: int, seconds: float
) -> dict[str, Any]:
    """N rooms driven directly: one aiortc peer (a tone) each, the prompt looped, the room
    recorded. Janus's CPU per call and the frames each peer hears."""
    from apps.automation.bridge import AudioBridgeRoom

    async def nothing(event: dict[str, Any]) -> None:
        pass

    rooms, peers, counts = [], [], [0] * n
    try:
        for index in range(n):
            room = AudioBridgeRoom(janus_url, f"bare-{uuid.uuid4().hex[:8]}", nothing)
            await room.open(record_dir=record_dir)
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTrack(ToneTrack(440.0))

            def on_track(track: MediaStreamTrack, index: int = index) -> None:
                async def count() -> None:
                    while True:
                        try:
                            await track.recv()
                        except Exception:
                            return
                        counts[index] += 1

                asyncio.ensure_future(count())

            pc.on("track", on_track)
            await pc.setLocalDescription(await pc.createOffer())
            answer = await room.join(
                f"peer-{index}", {"type": "offer", "sdp": pc.localDescription.sdp}
            )
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            await room.start_recording(record_dir / f"bare-{index}")
            await room.play(prompt, f"prompt-{index}", loop=True)
            rooms.append(room)
            peers.append(pc)
        await asyncio.sleep(2)
        before, counts_before = cpu_seconds(janus_pid), list(counts)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(janus_pid) - before) / elapsed * 100
        rates = [(c - b) / elapsed for c, b in zip(counts, counts_before, strict=True)]
    finally:
        for pc in peers:
            await pc.close()
        for room in rooms:
            await room.close()
    return {"cpu_percent": cpu, "rates": rates}


def stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99), "n": len(values)}


def record_figures(
    results_file: bench_results.Results,
    latencies: dict[str, list[float]],
    bare_prompt: list[float],
    concurrent: list[dict[str, Any]],
    bare: list[dict[str, Any]],
) -> None:
    """The latencies' p50 (the prompt beside the bare AudioBridge), CPU per call at each step
    beside the bare engine's, and the most calls held with full audio."""
    prompt, dtmf = latencies["prompt"], latencies["dtmf"]
    results_file.add(
        "answer -> first prompt audio at the caller (p50)",
        percentile(prompt, 50),
        "ms",
        better="lower",
        ceiling_name="join -> first prompt audio, bare AudioBridge (p50)",
        ceiling=percentile(bare_prompt, 50),
        p50_ms=percentile(prompt, 50),
        p99_ms=percentile(prompt, 99),
    )
    results_file.add(
        "key pressed -> RecognizeCompleted at the app (p50)",
        percentile(dtmf, 50),
        "ms",
        better="lower",
        p50_ms=percentile(dtmf, 50),
        p99_ms=percentile(dtmf, 99),
    )
    bare_by_calls = {step["calls"]: step for step in bare}
    for step in concurrent:
        n = step["calls"]
        bare_step = bare_by_calls.get(n)
        results_file.add(
            f"CPU per automated call, {n} at once (Janus, media, web, workers)",
            sum(step["cpu_percent"].values()) / n,
            "% of a core",
            better="lower",
            ceiling_name=f"bare Janus AudioBridge per call, {n} at once" if bare_step else "",
            ceiling=bare_step["cpu_percent"] / n if bare_step else None,
        )
    held = [s["calls"] for s in concurrent if s["rates"] and min(s["rates"]) >= 0.9 * FULL_RATE]
    tried = max((s["calls"] for s in concurrent), default=0)
    results_file.add(
        f"automated calls held with full audio (steps up to {tried})",
        max(held, default=0),
        "calls",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="sequential calls for (a) and (b)")
    parser.add_argument("--steps", default="2,5,10,20", help="concurrent calls to try for (c)")
    parser.add_argument("--seconds", type=float, default=10, help="each CPU window")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.steps, args.seconds = 1, "1", 1
    results_file = bench_results.Results("automation", smoke=args.smoke, path=args.json)
    steps = [int(s) for s in args.steps.split(",")]
    for tool in ("janus", "espeak-ng", "ffmpeg"):
        if not shutil.which(tool):
            print(f"setup failed: {tool} is not installed", file=sys.stderr)
            return 1
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    offer_loopback()
    began = time.monotonic()
    print(
        f"Spool Call Automation: {args.calls} calls, steps {steps}, windows of {args.seconds:g} s, "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    result: dict[str, Any] = {}
    try:
        conftest = tokens.load_conftest(scratch)
        for name in ("aioice", "aiortc", "azure"):
            logging.getLogger(name).setLevel(logging.WARNING)
        live, cleanups = conftest.start_spool(tokens.QUOTA_COUNTED)
        try:
            connection = live.create_resource(f"bench-{os.getpid()}")
            socket_url = live.http_url.replace("http://", "ws://") + "/ws/"
            line, _ = voip_user(live, connection)
            route_line(live, line)
            caller = voip_user(live, connection)
            app = App(conftest, live, connection)
            try:
                latencies = asyncio.run(
                    measure_latencies(app, socket_url, caller[1], line, args.calls)
                )
                print("  measured latencies", flush=True)
                concurrent = []
                users = [voip_user(live, connection) for _ in range(max(steps))]
                for n in steps:
                    step = asyncio.run(
                        measure_concurrent(app, live, socket_url, users[:n], line, args.seconds)
                    )
                    step["calls"] = n
                    concurrent.append(step)
                    worst = min(step["rates"]) if step["rates"] else 0
                    print(f"  {n} concurrent calls: worst caller {worst:.1f} frames/s", flush=True)
                    if worst < 0.9 * FULL_RATE:
                        break
            finally:
                app.stop()
        finally:
            conftest.stop_spool(live, cleanups)
        # The bare engine: a Janus of its own, the same prompt.
        from apps.automation import audio
        from tests.janus import run_janus

        prompt = audio.speech_file(PROMPT)
        with run_janus() as janus:
            bare_prompt = asyncio.run(bare_prompt_latency(janus.url, prompt, args.calls))
            bare = []
            for n in [s["calls"] for s in concurrent]:
                record_dir = scratch / f"bare-{n}"
                record_dir.mkdir()
                step = asyncio.run(
                    bare_concurrent(janus.url, janus.pid, prompt, record_dir, n, args.seconds)
                )
                step["calls"] = n
                bare.append(step)
    except (tokens.SetupError, RuntimeError, OSError, TimeoutError) as error:
        print(f"setup failed: {error!r}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("Latency (ms)                                              n      p50      p99")
    for name, values in (
        ("answer -> first prompt audio at the caller (Spool)", latencies["prompt"]),
        ("join -> first prompt audio (bare AudioBridge)", bare_prompt),
        ("key pressed -> RecognizeCompleted at the app (Spool)", latencies["dtmf"]),
    ):
        s = stats(values)
        print(f"  {name:<54} {s['n']:>3} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f}")
    print()
    print("Concurrent automated calls (each recorded, a looped prompt, a DTMF recognize)")
    print(
        "  calls  janus%  media%   web%  workers%  total%/call  worst fps | bare janus%/call  worst fps"
    )
    for step, bare_step in zip(concurrent, bare, strict=False):
        cpu = step["cpu_percent"]
        total = sum(cpu.values())
        print(
            f"  {step['calls']:>5} {cpu['janus']:>7.1f} {cpu['media']:>7.1f} {cpu['web']:>6.1f}"
            f" {cpu['workers']:>8.1f} {total / step['calls']:>12.1f} {min(step['rates']):>10.1f} |"
            f" {bare_step['cpu_percent'] / bare_step['calls']:>16.1f} {min(bare_step['rates']):>10.1f}"
        )
    print(f"total run time {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")
    result = {
        "prompt": stats(latencies["prompt"]),
        "prompt_bare": stats(bare_prompt),
        "dtmf": stats(latencies["dtmf"]),
        "concurrent": [
            {"calls": s["calls"], "cpu_percent": s["cpu_percent"], "worst_fps": min(s["rates"])}
            for s in concurrent
        ],
        "concurrent_bare": [
            {
                "calls": s["calls"],
                "janus_cpu_percent": s["cpu_percent"],
                "worst_fps": min(s["rates"]),
            }
            for s in bare
        ],
    }
    record_figures(results_file, latencies, bare_prompt, concurrent, bare)
    results_file.save()
    print(json.dumps(finite(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
