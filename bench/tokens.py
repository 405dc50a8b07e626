"""How many user access tokens Spool issues per second, beside this machine's ceilings.

Measures tokens issued per second through the HMAC-authenticated ACS Identity API
(POST /r/<slug>/identities/<id>/:issueAccessToken) over keep-alive connections, at 1 and 32
concurrent clients, with p50/p99 latency, against the web tier that `manage.py serve` runs
(its defaults, or SPOOL_WEB_PROCESSES / SPOOL_WEB_THREADS when set; plain HTTP and HTTPS). In the same run it measures the
bare-Django ceilings of ../shared/baselines/ (djbase under gunicorn and under daphne, and
ES256 signing on one core), so the figures can be read as ratios on whatever box runs them.

How: `tests.conftest.start_spool()` starts `manage.py serve` on free ports with a temporary
data dir (and a throwaway PostgreSQL database when DATABASE_URL is set). The script creates a
resource and a few identities, pre-signs one token request per identity (a signature stays
valid for 15 minutes), checks one of them returns 200, and has `wrk` replay them with a Lua
script. Aim (issue 18): at 32 clients, at least half the gunicorn ceiling of the same run with p99
under 30 ms on the embedded defaults, at least 0.35 of it on PostgreSQL.

    .venv/bin/python bench/tokens.py [--clients 1,32] [--seconds 10] [--smoke] [--json PATH]

Prints figures; exits non-zero only when something could not be set up. With --json PATH (or
SPOOL_BENCH_JSON) its headline figures go to that file too (bench/bench_results.py); --smoke
is the CI-safe run: 2 clients, 1 s runs, a few identities, one web process, no warm-up runs,
no quota-off serve, no daphne and no JWT ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results  # noqa: E402

BASELINES = Path(os.environ.get("SPOOL_BASELINES_DIR") or ROOT.parent / "shared" / "baselines")
API_VERSION = "2023-10-01"
TOKEN_BODY = json.dumps({"scopes": ["chat", "voip"]}).encode()
# Tokens for several identities, as real traffic from many users would ask for.
IDENTITIES = 32
AIM_RATIO = 0.35 if os.environ.get("DATABASE_URL") else 0.5  # of the gunicorn ceiling
AIM_P99_MS = 30.0
AIM_CLIENTS = 32
WARM_UP_SECONDS = 2  # wrk's run off the record before each measured one (whole seconds; 0: none)
SERVE_SIZES: dict[str, str] = {}  # on top of serve's defaults (--smoke: the smallest serve)
SMOKE_SERVE_SIZES = {"SPOOL_WEB_PROCESSES": "1", "SPOOL_WORKER_CONCURRENCY": "1"}

# wrk calls done() once at the end; printing one JSON line is sturdier than parsing its
# human-readable report (units switch between us, ms and s).
WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


class SetupError(Exception):
    """Something the measurement needs could not be started or did not answer."""


@dataclass
class Result:
    scenario: str
    clients: int
    per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass
class Resource:
    """A resource as the benchmarks call it: under /r/<slug>/ on serve's own ports (HTTP and
    HTTPS), or at the root of its own origin (`endpoint`, HTTPS)."""

    prefix: str  # /r/<slug>
    key: str
    endpoint: str = ""


# --- Setting up -------------------------------------------------------------------------
def load_conftest(scratch: Path) -> ModuleType:
    """tests/conftest.py, which knows how to start `manage.py serve` and sign requests.

    It imports Django models, so Django is set up first with the test settings; those
    create a data dir for this process, pointed at our scratch dir so nothing is left behind.
    """
    os.environ["SPOOL_DATA_DIR"] = str(scratch / "bench-process")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tests import conftest

    return conftest


def resource_of(live: Any, connection: str) -> Resource:
    """The resource `live.create_resource()` made (`live`: tests.conftest.LiveSpool)."""
    fields = dict(part.partition("=")[::2] for part in connection.strip().split(";") if part)
    endpoint = fields["endpoint"].rstrip("/")
    return Resource(
        prefix=f"/r/{live.slug_of(connection)}", key=fields["accesskey"], endpoint=endpoint
    )


def send(
    base_url: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    cafile: str | None = None,
) -> tuple[int, bytes]:
    """One request with the target exactly as given (the signature covers its raw form)."""
    parts = urlsplit(base_url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=cafile)
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, context=context, timeout=10
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            method, target, body=body, headers={"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def create_identities(
    conftest: ModuleType, http_url: str, resource: Resource, count: int
) -> list[str]:
    host = f"{urlsplit(http_url).netloc}{resource.prefix}"
    target = f"{resource.prefix}/identities?api-version={API_VERSION}"
    ids = []
    for _ in range(count):
        headers = conftest.sign_headers("POST", target, b"{}", resource.key, host)
        status, body = send(http_url, "POST", target, headers, b"{}")
        if status != 201:
            raise SetupError(f"creating an identity answered {status}: {body[:300]!r}")
        ids.append(json.loads(body)["identity"]["id"])
    return ids


def presign_token_requests(
    conftest: ModuleType, base_url: str, resource: Resource, raw_ids: list[str]
) -> list[tuple[str, dict[str, str]]]:
    """(target, headers) per identity, signed for the Host header wrk will send to base_url."""
    netloc = urlsplit(base_url).netloc
    signed = []
    for raw_id in raw_ids:
        target = f"{resource.prefix}/identities/{quote(raw_id, safe='')}/:issueAccessToken?api-version={API_VERSION}"
        headers = conftest.sign_headers(
            "POST", target, TOKEN_BODY, resource.key, f"{netloc}{resource.prefix}"
        )
        signed.append((target, {"Host": netloc, "Content-Type": "application/json", **headers}))
    return signed


def check_token_request(
    base_url: str, target: str, headers: dict[str, str], cafile: str | None
) -> None:
    status, body = send(base_url, "POST", target, headers, TOKEN_BODY, cafile)
    if status != 200 or "token" not in json.loads(body or b"{}"):
        raise SetupError(
            f"the pre-signed token request to {base_url} answered {status}: {body[:300]!r}"
        )


# --- Load generation --------------------------------------------------------------------
def lua_string(value: str) -> str:
    # JSON string escapes coincide with Lua's for printable ASCII, which is all we send.
    assert value.isascii() and value.isprintable(), value
    return json.dumps(value)


def replay_script(requests: list[tuple[str, dict[str, str]]], body: bytes) -> str:
    """A wrk script that sends the pre-signed requests in turn on every connection."""
    lines = ["local prepared = {}", "function init(args)"]
    for target, headers in requests:
        table = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        lines.append(
            f"  prepared[#prepared + 1] = wrk.format('POST', {lua_string(target)}, {{{table}}}, "
            f"{lua_string(body.decode())})"
        )
    lines += [
        "end",
        "local i = 0",
        "function request()",
        "  i = i % #prepared + 1",
        "  return prepared[i]",
        "end",
    ]
    return "\n".join(lines) + "\n" + WRK_DONE


def run_wrk(scenario: str, url: str, clients: int, seconds: float, script: Path) -> Result:
    command = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    summary = next(
        (line for line in completed.stdout.splitlines() if line.startswith('{"requests"')), None
    )
    if completed.returncode != 0 or summary is None:
        raise SetupError(f"wrk failed on {url}:\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(summary)
    return Result(
        scenario=scenario,
        clients=clients,
        per_second=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non_2xx=figures["non_2xx"],
        socket_errors=figures["socket_errors"],
    )


# --- Baselines --------------------------------------------------------------------------
def baseline_env() -> dict[str, str]:
    # Our own DJANGO_SETTINGS_MODULE would override djbase's setdefault().
    env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SPOOL_DATA_DIR")
    }
    env["PYTHONPATH"] = str(BASELINES)
    return env


def start_baseline(name: str, argv: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=BASELINES, env=baseline_env(), stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if send(f"http://127.0.0.1:{port}", "GET", "/sync", {}, b"")[0] == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    stop(process)
    raise SetupError(f"{name} did not answer on port {port}:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_baseline(
    name: str, app_argv: list[str], port: int, clients: int, seconds: float, scratch: Path
) -> Result:
    script = scratch / "done.lua"
    script.write_text(WRK_DONE)
    process = start_baseline(name, app_argv, port, scratch / f"{name.split()[0]}.log")
    try:
        url = f"http://127.0.0.1:{port}/sync"
        if WARM_UP_SECONDS:
            run_wrk("warm-up", url, clients, max(1, WARM_UP_SECONDS // 2), script)
        return run_wrk(f"ceiling: bare Django, {name}", url, clients, seconds, script)
    finally:
        stop(process)


def jwt_ceiling() -> list[str]:
    completed = subprocess.run(
        [sys.executable, str(BASELINES / "jwt_sign.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=baseline_env(),
    )
    if completed.returncode != 0:
        raise SetupError(f"jwt_sign.py failed:\n{completed.stderr}")
    return completed.stdout.strip().splitlines()


# --- Report -----------------------------------------------------------------------------
def print_table(results: list[Result]) -> None:
    width = max(len(r.scenario) for r in results)
    print(
        f"{'scenario':<{width}}  {'clients':>7}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'non-2xx':>7}  {'sock err':>8}"
    )
    for r in results:
        print(
            f"{r.scenario:<{width}}  {r.clients:>7}  {r.per_second:>8,.0f}  {r.p50_ms:>7.1f}  {r.p99_ms:>7.1f}"
            f"  {r.non_2xx:>7}  {r.socket_errors:>8}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients", default="1,32", help="comma-separated concurrent connections (default 1,32)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10, help="length of each measured run (default 10)"
    )
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    global IDENTITIES, WARM_UP_SECONDS, SERVE_SIZES
    if args.smoke:
        args.clients, args.seconds, IDENTITIES, WARM_UP_SECONDS = "2", 1, 4, 0
        SERVE_SIZES = SMOKE_SERVE_SIZES
    results_file = bench_results.Results("tokens", smoke=args.smoke, path=args.json)
    client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    try:
        conftest = load_conftest(scratch)
        database = (
            "PostgreSQL (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "SQLite (embedded)"
        )
        redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)"
        sizes = serve_sizes()
        print(
            f"Spool token issuance: {database}, {redis}, {sizes['SPOOL_WEB_PROCESSES']} web processes x "
            f"{sizes['SPOOL_WEB_THREADS']} threads, {os.cpu_count()} CPUs, "
            f"wrk -t1, {args.seconds:g} s per run; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results = measure_spool(conftest, client_counts, args.seconds, scratch)
        if not args.smoke:  # the same code path, with the quotas off
            results += measure_spool(
                conftest, [max(client_counts)], args.seconds, scratch, QUOTA_OFF, only_http=True
            )
        results += measure_ceilings(
            conftest, max(client_counts), args.seconds, scratch, with_daphne=not args.smoke
        )
        jwt_lines = [] if args.smoke else jwt_ceiling()
    except (SetupError, RuntimeError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"setup failed: {error}\n{detail}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print_table(results)
    print()
    print("JWT signing ceiling (../shared/baselines/jwt_sign.py, one core):")
    for line in jwt_lines:
        print(f"  {line}")
    report_ratios(results)
    record_figures(results_file, results)
    results_file.save()
    # Other work on the box skews single runs; a high figure here says to repeat the run.
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


def serve_sizes() -> dict[str, str]:
    from django.conf import settings

    return {
        "SPOOL_WEB_PROCESSES": str(settings.WEB_PROCESSES),
        "SPOOL_WEB_THREADS": str(settings.WEB_THREADS),
        "SPOOL_WORKER_CONCURRENCY": str(settings.WORKER_CONCURRENCY),
        **SERVE_SIZES,
    }


# The token quota (1,000 per 30 s per resource, as ACS) would refuse most of a benchmark's
# requests: measured with it counted but never reached, and with it off, to show its cost.
# The same for every benchmark's quotas (chat per identity, SMS per resource...).
_QUOTAS = ("TOKENS", "IDENTITIES", "CHAT", "SMS", "CALL_INVITES")
QUOTA_COUNTED = {f"SPOOL_QUOTA_{name}": "1000000000/30" for name in _QUOTAS}
QUOTA_OFF = {f"SPOOL_QUOTA_{name}": "off" for name in _QUOTAS}


def measure_spool(
    conftest: ModuleType,
    client_counts: list[int],
    seconds: float,
    scratch: Path,
    quota: dict[str, str] = QUOTA_COUNTED,
    only_http: bool = False,
) -> list[Result]:
    started = time.monotonic()
    # serve's own defaults (spool.settings); the test fixture trims them to 1 each.
    live, cleanups = conftest.start_spool({**serve_sizes(), **quota})
    note = ", quota off" if quota is QUOTA_OFF else ""
    results = []
    try:
        resource = resource_of(live, live.create_resource(f"bench-{os.getpid()}"))
        raw_ids = create_identities(conftest, live.http_url, resource, IDENTITIES)
        print(
            f"serve started, resource and {len(raw_ids)} identities created in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        own_origin = Resource(prefix="", key=resource.key)
        targets = [
            ("HTTP /r/<slug>", live.http_url, resource),
            ("HTTPS /r/<slug>", live.https_url, resource),
            ("HTTPS own origin", resource.endpoint, own_origin),
        ]
        for label, base_url, called in targets[:1] if only_http else targets:
            # Signed just before use: the Host header (and so the signature) differs per port.
            signed = presign_token_requests(conftest, base_url, called, raw_ids)
            check_token_request(base_url, *signed[0], cafile=live.cert)
            script = scratch / f"tokens-{len(results)}-{label.split()[0]}.lua"
            script.write_text(replay_script(signed, TOKEN_BODY))
            url = f"{base_url}/"  # the path comes from the script
            # Warm every web process and thread (lazy imports, DB connections) off the record.
            if WARM_UP_SECONDS:
                run_wrk("warm-up", url, max(client_counts), WARM_UP_SECONDS, script)
            for clients in client_counts:
                results.append(
                    run_wrk(
                        f"Spool tokens, {label} keep-alive{note}", url, clients, seconds, script
                    )
                )
    finally:
        conftest.stop_spool(live, cleanups)
    return results


def measure_ceilings(
    conftest: ModuleType, clients: int, seconds: float, scratch: Path, with_daphne: bool = True
) -> list[Result]:
    """djbase's trivial JSON view under gunicorn (WSGI) and daphne (ASGI), one after the other."""
    bin_dir = Path(sys.executable).parent
    port = conftest.free_port()
    gunicorn = [
        str(bin_dir / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "djbase.wsgi",
    ]
    results = [measure_baseline("gunicorn -w 2 (WSGI)", gunicorn, port, clients, seconds, scratch)]
    if not with_daphne:
        return results
    port = conftest.free_port()
    daphne = [
        str(bin_dir / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "djbase.asgi:application",
    ]
    results.append(measure_baseline("daphne (ASGI)", daphne, port, clients, seconds, scratch))
    return results


def record_figures(results_file: bench_results.Results, results: list[Result]) -> None:
    """Every Spool row as a headline figure; at the ceilings' concurrency, beside gunicorn's."""
    gunicorn = next(r for r in results if "gunicorn" in r.scenario)
    for r in results:
        if not r.scenario.startswith("Spool"):
            continue
        same = r.clients == gunicorn.clients
        results_file.add(
            f"{r.scenario.removeprefix('Spool tokens, ')}, {r.clients} client"
            + ("s" if r.clients != 1 else ""),
            r.per_second,
            "tokens/s",
            ceiling_name=f"bare Django, gunicorn -w 2 (WSGI), {gunicorn.clients} clients"
            if same
            else "",
            ceiling=gunicorn.per_second if same else None,
            p50_ms=r.p50_ms,
            p99_ms=r.p99_ms,
        )


def report_ratios(results: list[Result]) -> None:
    """Spool beside the gunicorn ceiling, and against the aim, at the highest concurrency."""
    gunicorn = next(r for r in results if "gunicorn" in r.scenario)
    print()
    for r in results:
        if r.scenario.startswith("Spool") and r.clients == gunicorn.clients:
            print(
                f"{r.scenario} at {r.clients} clients / gunicorn ceiling: {r.per_second / gunicorn.per_second:.2f}"
            )
    for r in results:
        if r.scenario.startswith("Spool") and r.clients == AIM_CLIENTS:
            ratio = r.per_second / gunicorn.per_second
            met = ratio >= AIM_RATIO and r.p99_ms < AIM_P99_MS
            print(
                f"aim (>= {AIM_RATIO:g} of the ceiling, p99 < {AIM_P99_MS:g} ms at {AIM_CLIENTS} clients), "
                f"{r.scenario}: {'met' if met else 'NOT met'} ({ratio:.2f}, p99 {r.p99_ms:.1f} ms)"
            )


if __name__ == "__main__":
    sys.exit(main())
