"""How fast 1:1 calls set up, and what one forwarded media leg costs in a group call, beside the
bare stack's ceiling and the alternatives to an SFU.

(a) Call setup: two CallAgents (apps/calls/agent.py) on one `manage.py serve`, each connected
once to /ws/ with a voip token, place N sequential 1:1 calls (call, answer); each is timed
from the invite until BOTH agents have received their first audio frame, then hung up (both
see Disconnected). Beside it, the ceiling measured in the same run: two aiortc peers in this
process with the offer and answer handed over directly, N times.

(b) CPU per forwarded leg (a leg = one participant receiving one other's media): Janus
(docker/janus/, started by tests/janus.py) forwards K legs in a VideoRoom: P publishers of an
aiortc tone (then tone + VP8 video, 320x240 grain at ~500 kbit/s) and S receive-only
subscribers of every publisher, K = P x S, each a JanusLeg from apps/calls/sfu.py. Janus' CPU
(/proc/<pid>/stat) over a fixed window, as % of one core, divided by K. For comparison, in a
child process of its own:
- relay: aiortc receiving the same publishers and re-sending each through MediaRelay (decoded
  once per source, encoded once per leg), CPU / legs;
- mesh: an aiortc sender sending its own tone (and video) to M receivers, as every browser of
  a mesh call does; CPU per extra leg = (CPU with M legs - CPU with 1) / (M - 1).
The load generators (every other aiortc peer) run in this process on the same cores; only
the server's CPU is counted. Frames/s per leg and kbit/s per leg show the media kept flowing.

How: `tests.conftest.start_spool()` starts `manage.py serve` on free ports with a temporary
data dir; identities and voip tokens come from the HMAC-signed Identity API.

    .venv/bin/python bench/calls.py [--calls 50] [--seconds 10] [--quick] [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py); --smoke is the CI-safe run: 2 calls, 1 s windows, one or two legs
per topology.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from aiortc import (  # noqa: E402
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay  # noqa: E402

from apps.calls.agent import CallAgent, ToneTrack, offer_loopback  # noqa: E402
from apps.calls.sfu import JanusError, JanusLeg, destroy_room  # noqa: E402
from bench import bench_results, tokens  # noqa: E402
from bench.chat import finite, percentile  # noqa: E402
from tests.janus import BarsTrack, run_janus  # noqa: E402

IDENTITY_API_VERSION = "2023-10-01"
STEP = 0.002  # seconds between checks for a first frame
WARM_UP = 2.0  # seconds of media before a CPU window opens
FLOW_TIMEOUT = 30.0  # seconds for every leg of a topology to carry media
# Topologies: (publishers, subscribers per publisher) for Janus and the relay; legs for mesh.
JANUS_AUDIO, JANUS_VIDEO = (2, 8), (2, 4)
RELAY_AUDIO, RELAY_VIDEO = (2, 2), (1, 2)
MESH_AUDIO, MESH_VIDEO = 4, 2


def peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def jsep(description: RTCSessionDescription) -> dict[str, str]:
    return {"type": description.type, "sdp": description.sdp}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- (a) Call setup -----------------------------------------------------------------------------
def voip_users(conftest: ModuleType, http_url: str, resource: tokens.Resource) -> list[Any]:
    """(raw id, voip token) of two new identities."""
    target = f"{resource.prefix}/identities?api-version={IDENTITY_API_VERSION}"
    body = json.dumps({"createTokenWithScopes": ["voip"]}).encode()
    users = []
    for _ in range(2):
        host = f"{http_url.split('://')[1]}{resource.prefix}"
        headers = conftest.sign_headers("POST", target, body, resource.key, host)
        status, answer = tokens.send(http_url, "POST", target, headers, body)
        if status != 201:
            raise tokens.SetupError(f"creating an identity answered {status}: {answer[:300]!r}")
        created = json.loads(answer)
        users.append((created["identity"]["id"], created["accessToken"]["token"]))
    return users


async def first_frames(*counters: Any, timeout: float = 10) -> None:
    """Until every object's frames_received is above 0."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(c.frames_received > 0 for c in counters):
        if loop.time() > deadline:
            raise TimeoutError("no audio within the timeout")
        await asyncio.sleep(STEP)


async def measure_setup(socket_url: str, users: list[Any], calls: int) -> tuple[list[float], int]:
    """Setup times (ms) of `calls` sequential calls between two agents, and failures."""
    (_, alice_token), (bob_id, bob_token) = users
    alice, bob = CallAgent(socket_url, alice_token), CallAgent(socket_url, bob_token)
    await alice.connect()
    await bob.connect()
    times, failures = [], 0
    try:
        for _ in range(calls):
            started = time.perf_counter()
            try:
                await alice.call(bob_id)
                await bob.answer()
                await first_frames(alice, bob)
                times.append((time.perf_counter() - started) * 1000)
                await alice.hang_up()
                await alice.wait_state("Disconnected")
                await bob.wait_state("Disconnected")
            except (TimeoutError, RuntimeError) as error:
                failures += 1
                print(f"  a call failed: {error!r}", file=sys.stderr)
                if alice.call_id:
                    await alice.hang_up()
                await asyncio.sleep(1)
    finally:
        await alice.close()
        await bob.close()
    return times, failures


class FrameCount:
    """A received track's frame count, like CallAgent.frames_received."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.frames_received = 0
        asyncio.ensure_future(self._count(track))

    async def _count(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:  # the peer closed
                return
            self.frames_received += 1


async def measure_bare(calls: int) -> list[float]:
    """The same measurement for two aiortc peers in this process, signaling handed over."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        caller, callee = peer(), peer()
        counts: list[FrameCount] = []
        for side in (caller, callee):
            side.addTrack(ToneTrack())
            side.on("track", lambda track, counts=counts: counts.append(FrameCount(track)))
        try:
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setRemoteDescription(caller.localDescription)
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            # Both track events have fired once both descriptions are set.
            await first_frames(*counts)
            times.append((time.perf_counter() - started) * 1000)
        finally:
            await caller.close()
            await callee.close()
    return times


# --- (b) Forwarding: the receiving side -------------------------------------------------------
class Sink:
    """Receiving peers, one per leg; counts frames per (leg, kind)."""

    def __init__(self) -> None:
        self.frames: Counter[tuple[str, str]] = Counter()
        self.peers: dict[str, RTCPeerConnection] = {}

    def peer(self, leg: str, *kinds: str) -> RTCPeerConnection:
        connection = self.peers[leg] = peer()
        for kind in kinds:  # receive-only transceivers, when this side offers
            connection.addTransceiver(kind, direction="recvonly")
        connection.on("track", lambda track: asyncio.ensure_future(self._count(leg, track)))
        return connection

    async def _count(self, leg: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:  # the peer closed
                return
            self.frames[(leg, track.kind)] += 1

    async def wait_flowing(self, kinds: tuple[str, ...]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLOW_TIMEOUT
        wanted = [(leg, kind) for leg in self.peers for kind in kinds]
        while not all(self.frames[key] > 0 for key in wanted):
            if loop.time() > deadline:
                missing = [key for key in wanted if not self.frames[key]]
                raise tokens.SetupError(f"no media on {len(missing)} legs, e.g. {missing[:3]}")
            await asyncio.sleep(0.05)

    async def bytes_received(self) -> int:
        total = 0
        for connection in self.peers.values():
            for stats in (await connection.getStats()).values():
                if stats.type == "transport":
                    total += stats.bytesReceived
        return total

    async def close(self) -> None:
        for connection in self.peers.values():
            await connection.close()


@dataclass
class Forwarding:
    system: str  # "janus", "aiortc relay", "aiortc mesh sender"
    media: str  # "audio" or "audio+video"
    legs: int
    sources: int
    cpu_percent: float  # of one core, the server process over the window
    per_leg_percent: float
    audio_fps_min: float  # per leg, over the window
    video_fps_min: float | None
    kbps_per_leg: float
    generator_cpu_percent: float  # this process (the load generator), for context


async def measure_window(
    system: str, media: str, pid: int, sink: Sink, sources: int, seconds: float
) -> Forwarding:
    kinds = ("audio", "video") if media == "audio+video" else ("audio",)
    await sink.wait_flowing(kinds)
    await asyncio.sleep(WARM_UP)
    frames, received = Counter(sink.frames), await sink.bytes_received()
    cpu, own, started = cpu_seconds(pid), cpu_seconds(os.getpid()), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    server = (cpu_seconds(pid) - cpu) / elapsed * 100
    generator = (cpu_seconds(os.getpid()) - own) / elapsed * 100
    legs = len(sink.peers)
    kbps = (await sink.bytes_received() - received) * 8 / 1000 / elapsed / legs

    def fps(kind: str) -> float:
        return min((sink.frames[(leg, kind)] - frames[(leg, kind)]) / elapsed for leg in sink.peers)

    return Forwarding(
        system,
        media,
        legs,
        sources,
        server,
        server / legs,
        fps("audio"),
        fps("video") if "video" in kinds else None,
        kbps,
        generator,
    )


def source_tracks(video: bool, frequency: float = 440) -> list[MediaStreamTrack]:
    """A tone, and with `video` 320x240 grain at 30 fps (VP8 at about 500 kbit/s)."""
    return [ToneTrack(frequency), BarsTrack(noise=True)] if video else [ToneTrack(frequency)]


# --- (b) Janus ------------------------------------------------------------------------------------
async def measure_janus(
    url: str, pid: int, publishers: int, subscribers: int, video: bool, seconds: float
) -> Forwarding:
    room, sink, legs, senders = str(uuid.uuid4()), Sink(), [], []
    legs_by_name: dict[str, JanusLeg] = {}

    async def ignore(event: dict[str, Any]) -> None:
        pass  # publishers do not take the other publishers' feeds: only subscribers count

    def receiver(name: str) -> Any:
        async def on_event(event: dict[str, Any]) -> None:
            if event["kind"] != "offer":
                return
            connection = sink.peer(f"{name}<-{event['feed']}")
            await connection.setRemoteDescription(RTCSessionDescription(**event["jsep"]))
            await connection.setLocalDescription(await connection.createAnswer())
            await legs_by_name[name].answer_feed(event["feed"], jsep(connection.localDescription))

        return on_event

    try:
        for n in range(publishers):
            leg = JanusLeg(url, room, f"pub{n}", ignore)
            legs.append(leg)
            await leg.open()
            sender = peer()
            senders.append(sender)
            for track in source_tracks(video, 440 + 110 * n):
                sender.addTrack(track)
            await sender.setLocalDescription(await sender.createOffer())
            answer = await leg.publish(jsep(sender.localDescription))
            await sender.setRemoteDescription(RTCSessionDescription(**answer))
        for n in range(subscribers):
            name = f"sub{n}"
            leg = legs_by_name[name] = JanusLeg(url, room, name, receiver(name))
            legs.append(leg)
            await leg.open()
        media = "audio+video" if video else "audio"
        return await measure_window("janus", media, pid, sink, publishers, seconds)
    finally:
        await sink.close()
        for leg in legs:
            await leg.close()
        for sender in senders:
            await sender.close()
        await destroy_room(url, room)


# --- (b) aiortc relay and mesh: a child process (`calls.py --peer`) ----------------------------
def peer_main() -> int:
    """Answer offers from stdin (one JSON line each) until EOF: {"op": "publish", "sdp"} makes a
    source of what arrives; {"op": "subscribe", "source": n or "local", "video", "sdp"} sends
    source n (through MediaRelay) or this process's own tone (+ video) to a receiver."""
    offer_loopback()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        relay, connections = MediaRelay(), []
        sources: list[dict[str, MediaStreamTrack]] = []
        local: dict[str, MediaStreamTrack] = {}
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            request = json.loads(line)
            connection = peer()
            connections.append(connection)
            if request["op"] == "publish":
                tracks: dict[str, MediaStreamTrack] = {}
                sources.append(tracks)
                connection.on(
                    "track", lambda track, tracks=tracks: tracks.update({track.kind: track})
                )
            else:
                if request["source"] == "local" and not local:
                    local.update({t.kind: t for t in source_tracks(request["video"])})
                source = local if request["source"] == "local" else sources[request["source"]]
                for track in source.values():
                    connection.addTrack(relay.subscribe(track))
            offer = RTCSessionDescription(sdp=request["sdp"], type="offer")
            await connection.setRemoteDescription(offer)
            await connection.setLocalDescription(await connection.createAnswer())
            print(json.dumps({"sdp": connection.localDescription.sdp}), flush=True)
        for connection in connections:
            await connection.close()

    asyncio.run(serve())
    return 0


class PeerProcess:
    """The child process, asked over its stdin/stdout."""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--peer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def answer(self, connection: RTCPeerConnection, **request: Any) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        await connection.setLocalDescription(await connection.createOffer())
        request["sdp"] = connection.localDescription.sdp
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        if not line:
            raise tokens.SetupError("the aiortc peer process exited")
        sdp = json.loads(line)["sdp"]
        await connection.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def measure_aiortc(
    mode: str, sources: int, receivers: int, video: bool, seconds: float
) -> Forwarding:
    """mode "relay": `sources` publishers sent to the child, each relayed to `receivers`;
    mode "mesh": the child sends its own media to `receivers`."""
    child, sink, senders = PeerProcess(), Sink(), []
    kinds = ("audio", "video") if video else ("audio",)
    await child.start()
    try:
        if mode == "relay":
            for n in range(sources):
                sender = peer()
                senders.append(sender)
                for track in source_tracks(video, 440 + 110 * n):
                    sender.addTrack(track)
                await child.answer(sender, op="publish")
        for n in range(sources if mode == "relay" else 1):
            for r in range(receivers):
                source: int | str = n if mode == "relay" else "local"
                connection = sink.peer(f"{source}->{r}", *kinds)
                await child.answer(connection, op="subscribe", source=source, video=video)
        system = "aiortc relay" if mode == "relay" else "aiortc mesh sender"
        media = "audio+video" if video else "audio"
        count = sources if mode == "relay" else 1
        return await measure_window(system, media, child.process.pid, sink, count, seconds)
    finally:
        await sink.close()
        for sender in senders:
            await sender.close()
        await child.stop()


# --- Report ---------------------------------------------------------------------------------------
def times_line(name: str, times: list[float], failures: int = 0) -> str:
    mean = sum(times) / len(times) if times else float("nan")
    return (
        f"  {name:<44} {len(times):>5}  {percentile(times, 50):>8.1f}  {percentile(times, 99):>8.1f}"
        f"  {mean:>8.1f}  {failures:>8}"
    )


def print_forwarding(rows: list[Forwarding], mesh_extra: dict[str, float]) -> None:
    print(
        "CPU per forwarded leg (% of one core; server process only; fps and kbit/s per leg, "
        "over the window)"
    )
    print(
        f"  {'system':<20} {'media':<12} {'sources':>7} {'legs':>5} {'CPU %':>7} {'per leg':>8} "
        f"{'audio fps':>9} {'video fps':>9} {'kbit/s':>7} {'generator %':>11}"
    )
    for r in rows:
        video = f"{r.video_fps_min:.0f}" if r.video_fps_min is not None else "-"
        print(
            f"  {r.system:<20} {r.media:<12} {r.sources:>7} {r.legs:>5} {r.cpu_percent:>7.1f} "
            f"{r.per_leg_percent:>8.2f} {r.audio_fps_min:>9.0f} {video:>9} {r.kbps_per_leg:>7.0f} "
            f"{r.generator_cpu_percent:>11.0f}"
        )
    for media, value in mesh_extra.items():
        print(f"  mesh: CPU per extra {media} leg on an aiortc sender: {value:.1f}% of a core")
    slow = [r for r in rows if r.audio_fps_min < 45 or (r.video_fps_min or 30) < 25]
    if slow:
        print(
            f"note: {len(slow)} row(s) kept below 45 audio / 25 video frames/s on some leg: the "
            "machine (shared with the load generator) was saturated there"
        )


async def measure_forwarding(seconds: float) -> tuple[list[Forwarding], dict[str, float]]:
    rows = []
    with run_janus(debug_level=3) as janus:
        for (publishers, subscribers), video in ((JANUS_AUDIO, False), (JANUS_VIDEO, True)):
            rows.append(
                await measure_janus(janus.url, janus.pid, publishers, subscribers, video, seconds)
            )
            print(f"  measured {rows[-1].system}, {rows[-1].media}", flush=True)
    for (sources, receivers), video in ((RELAY_AUDIO, False), (RELAY_VIDEO, True)):
        rows.append(await measure_aiortc("relay", sources, receivers, video, seconds))
        print(f"  measured {rows[-1].system}, {rows[-1].media}", flush=True)
    mesh_extra = {}
    for legs, video in ((MESH_AUDIO, False), (MESH_VIDEO, True)):
        one = await measure_aiortc("mesh", 1, 1, video, seconds)
        many = await measure_aiortc("mesh", 1, legs, video, seconds)
        rows += [one, many]
        mesh_extra[one.media] = (many.cpu_percent - one.cpu_percent) / (legs - 1)
        print(f"  measured {one.system}, {one.media}", flush=True)
    return rows, mesh_extra


def record_figures(
    results_file: bench_results.Results,
    setup: list[float],
    bare: list[float],
    rows: list[Forwarding],
) -> None:
    """Call setup p50 beside two bare aiortc peers; Janus's CPU per leg beside aiortc's relay
    (the alternative to an SFU) with the same media."""
    results_file.add(
        "call setup, invite to first audio at both ends (p50)",
        percentile(setup, 50),
        "ms",
        better="lower",
        ceiling_name="two aiortc peers, signaling in-process (p50)",
        ceiling=percentile(bare, 50),
        p50_ms=percentile(setup, 50),
        p99_ms=percentile(setup, 99),
    )
    for r in rows:
        if r.system != "janus":
            continue
        relay = next((x for x in rows if x.system == "aiortc relay" and x.media == r.media), None)
        results_file.add(
            f"Janus CPU per forwarded leg, {r.media}",
            r.per_leg_percent,
            "% of a core",
            better="lower",
            ceiling_name=f"aiortc MediaRelay per leg, {r.media}" if relay else "",
            ceiling=relay.per_leg_percent if relay else None,
        )


def main() -> int:
    if "--peer" in sys.argv[1:]:
        return peer_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="sequential calls (50)")
    parser.add_argument("--seconds", type=float, default=10, help="each CPU window (10)")
    parser.add_argument("--quick", action="store_true", help="a short run: 10 calls, 3 s windows")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    global JANUS_AUDIO, JANUS_VIDEO, RELAY_AUDIO, RELAY_VIDEO, MESH_AUDIO, MESH_VIDEO, WARM_UP
    if args.quick:
        args.calls, args.seconds = 10, 3
    if args.smoke:
        args.calls, args.seconds = 2, 1
        JANUS_AUDIO, JANUS_VIDEO, RELAY_AUDIO, RELAY_VIDEO = (1, 2), (1, 1), (1, 1), (1, 1)
        MESH_AUDIO, MESH_VIDEO, WARM_UP = 2, 2, 0.5
    results_file = bench_results.Results("calls", smoke=args.smoke, path=args.json)
    if not shutil.which("janus") and not os.path.exists("/usr/bin/janus"):
        print("setup failed: Janus not installed (apt-get install janus)", file=sys.stderr)
        return 1

    began, load = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    offer_loopback()
    print(
        f"Spool calls: {args.calls} sequential 1:1 calls, CPU windows of {args.seconds:g} s, "
        f"{os.cpu_count()} CPUs; load average {load:.2f}",
        flush=True,
    )
    try:
        conftest = tokens.load_conftest(scratch)
        for name in ("aioice", "aiortc"):  # the test settings log their every ICE check
            logging.getLogger(name).setLevel(logging.WARNING)
        live, cleanups = conftest.start_spool(tokens.QUOTA_COUNTED)
        try:
            resource = tokens.resource_of(live, live.create_resource(f"bench-{os.getpid()}"))
            users = voip_users(conftest, live.http_url, resource)
            socket_url = live.http_url.replace("http://", "ws://") + "/ws/"
            setup, failures = asyncio.run(measure_setup(socket_url, users, args.calls))
        finally:
            conftest.stop_spool(live, cleanups)
        bare = asyncio.run(measure_bare(args.calls))
        print("  measured call setup", flush=True)
        rows, mesh_extra = asyncio.run(measure_forwarding(args.seconds))
    except (tokens.SetupError, JanusError, RuntimeError, OSError) as error:
        print(f"setup failed: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("Call setup, invite to first audio frame at both ends (ms)")
    print(f"  {'':<44} {'calls':>5}  {'p50':>8}  {'p99':>8}  {'mean':>8}  {'failures':>8}")
    print(times_line("Spool: two CallAgents through manage.py serve", setup, failures))
    print(times_line("ceiling: two aiortc peers, signaling in-process", bare))
    print()
    print_forwarding(rows, mesh_extra)
    record_figures(results_file, setup, bare, rows)
    results_file.save()
    print(
        f"total run time {time.monotonic() - began:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f} (1 min)"
    )

    def summary(times: list[float]) -> dict[str, float]:
        mean = sum(times) / len(times) if times else float("nan")
        return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "mean_ms": mean}

    print(
        json.dumps(
            finite(
                {
                    "setup": {"calls": len(setup), "failures": failures, **summary(setup)},
                    "setup_ceiling": {"calls": len(bare), **summary(bare)},
                    "forwarding": [asdict(r) for r in rows],
                    "mesh_extra_leg_percent": mesh_extra,
                    "seconds": args.seconds,
                    "load_average": [load, os.getloadavg()[0]],
                }
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
