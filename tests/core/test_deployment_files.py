"""docker/: the Dockerfile, compose.yml, env.example and the Redis files, checked without a Docker
daemon (no container images can be fetched here): compose.yml as compose would read it with
env.example filled in, every name it uses declared, every setting it gives Spool one that
spool/settings.py reads, the fixed addresses consistent, HAProxy's configuration checked by
haproxy itself with compose's values, the image's entry point and health check run, and the
Redis and Sentinel configurations started for real (docs/deployment.md)."""

from __future__ import annotations

import datetime
import grp
import http.server
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, free_port, wait_for

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / "env.example"
SETTINGS = (ROOT / "spool" / "settings.py").read_text()

# A value for each secret env.example leaves empty (an operator's `openssl rand -hex 32`).
SECRET = "0123456789abcdef" * 4

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
    ${NAME:?message} and ${NAME?message}."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else str(value)
        if op in (":?", "?"):
            if empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(replace, text)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (compose's .env format, as env.example writes them)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def example_env() -> dict[str, str]:
    """env.example as an operator fills it in: every empty secret given a value."""
    return {key: value or SECRET for key, value in read_env_file(ENV_EXAMPLE).items()}


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yml as compose reads it: anchors merged, variables interpolated."""
    return resolve(raw_compose(), example_env() if env is None else env)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def spool_services() -> dict[str, dict[str, Any]]:
    """The services that run Spool's image."""
    return {
        name: service
        for name, service in services().items()
        if service.get("build", {}).get("target") == "spool"
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def address(service: str) -> str:
    return str(services()[service]["networks"]["spool"]["ipv4_address"])


def dockerfile_stages() -> dict[str, str]:
    """Each stage's name and text, in order."""
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def apt_packages(stage: str) -> set[str]:
    """The Debian packages a stage installs."""
    found = re.findall(r"apt-get install ((?:[^&]|\\\n)*)&&", dockerfile_stages()[stage])
    return {
        word
        for line in found
        for word in line.split()
        if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", word)
    }


def heredoc(path: str) -> str:
    """The file a `COPY <<'EOF' <path>` in the Dockerfile writes."""
    match = re.search(
        rf"^COPY [^\n]*<<'EOF' {re.escape(path)}\n(.*?)^EOF$", DOCKERFILE.read_text(), re.M | re.S
    )
    assert match, f"the Dockerfile writes no {path}"
    return match.group(1)


def require_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":  # CI installs it: a skip is a failure
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return found


# --- compose.yml ----------------------------------------------------------------------------------


def test_every_service_has_an_image_and_every_build_a_dockerfile_stage() -> None:
    # given
    stages = dockerfile_stages()

    for name, service in services().items():
        # then
        assert service.get("image"), f"{name} has no image"
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
            assert build.get("target") in stages, f"{name}: no stage {build.get('target')!r}"
    # and images with a tag Docker can pull carry a version, never `latest`
    for service in services().values():
        if "build" not in service:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), service["image"]
            assert not service["image"].endswith(":latest")


def test_depends_on_volumes_and_networks_name_what_is_declared() -> None:
    # given
    config = compose()
    declared_volumes = set(config["volumes"])
    declared_networks = set(config["networks"])

    for name, service in config["services"].items():
        # then every dependency is a service, started in an order that can be met
        depends = service.get("depends_on") or {}
        for dependency in depends:
            assert dependency in config["services"], f"{name} depends on unknown {dependency}"
            assert dependency != name
        if isinstance(depends, dict):
            for dependency, condition in depends.items():
                assert condition["condition"] in (
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                ), name
                if condition["condition"] == "service_healthy":
                    assert "healthcheck" in config["services"][dependency] or (
                        config["services"][dependency].get("build", {}).get("target") == "spool"
                    ), f"{name} waits for {dependency} to be healthy, which has no health check"
        # every named volume is declared, and every file mounted from docker/ exists
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                if "tls" not in source:  # the operator's certificates (docs/deployment.md)
                    assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} mounts undeclared volume {source}"
        # a service is on the private network or on the host's, never both
        if service.get("network_mode") == "host":
            assert "networks" not in service, name
            assert "ports" not in service, name
        else:
            assert set(service.get("networks", [])) <= declared_networks, name
            assert service.get("networks"), f"{name} is on no network"
    # and no declared volume is left unused
    used = {
        mount.split(":")[0]
        for service in config["services"].values()
        for mount in service.get("volumes", [])
    }
    assert declared_volumes <= used, f"unused volumes: {declared_volumes - used}"


def test_the_stack_is_all_there() -> None:
    # given
    config = compose()
    by_command = {name: service["command"] for name, service in spool_services().items()}

    # then the roles are split over hosts as docs/deployment.md says
    roles = [command[0] for command in by_command.values()]
    assert roles.count("web") == 2 and roles.count("worker") == 2
    assert roles.count("beat") >= 1 and roles.count("media") == 1
    # and migrations run once, before anything that uses the database starts
    assert by_command["migrate"] == ["migrate", "--noinput"]
    assert config["services"]["migrate"]["restart"] == "no"
    for name in by_command:
        if name != "migrate":
            condition = config["services"][name]["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name
    for name in ("postgres", "redis-1", "redis-2", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert name in config["services"]
    for name in ("haproxy", "janus", "turn", "kamailio", "rtpengine"):
        assert name in config["services"]
    # monitoring is there on request only
    for name in ("prometheus", "grafana"):
        assert config["services"][name]["profiles"] == ["monitoring"]
    # the media process sits beside Janus and rtpengine, on 127.0.0.1 (RTP_HOST)
    for name in ("media", "janus", "kamailio", "rtpengine", "turn"):
        assert config["services"][name]["network_mode"] == "host", name


def test_spool_gets_only_settings_that_spool_reads() -> None:
    for name, service in spool_services().items():
        for variable in environment(service):
            # then each is read by spool/settings.py (a typo would be silently ignored)
            assert f'"{variable}"' in SETTINGS, f"{name}: Spool reads no {variable}"
        # and every Spool service shares one environment (the media process, on the host's
        # network, binds its metrics port to the bridge's gateway)
        own = environment(service)
        if name == "media":
            assert (
                own.pop("SPOOL_BIND")
                == compose()["networks"]["spool"]["ipam"]["config"][0]["gateway"]
            )
        assert own == environment(spool_services()["web1"]), name
        assert service["env_file"] == ".env" or service["env_file"] == [".env"]


def test_env_example_names_settings_or_compose_variables_and_holds_no_secret() -> None:
    # given
    names = read_env_file(ENV_EXAMPLE)
    commented = re.findall(r"^#([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M)
    raw = COMPOSE.read_text()
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", raw))

    for name in [*names, *commented]:
        # then each is compose's own or one of Spool's settings (every line reaches Spool)
        known = name in interpolated or f'"{name}"' in SETTINGS or name.startswith("COMPOSE_")
        assert known, f"env.example sets {name}, which neither compose.yml nor Spool reads"
    # every variable compose.yml requires is in env.example
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", raw))
    assert required <= set(names), f"missing from env.example: {required - set(names)}"
    # and every secret is left empty for the operator, and required by compose.yml
    secrets = {name for name in names if re.search(r"SECRET|PASSWORD|TOKEN", name)}
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "SPOOL_TURN_SECRET"} <= secrets
    for name in secrets:
        assert names[name] == "", f"env.example holds a value for {name}"
        assert name in required, f"compose.yml starts without {name}"
        uses = re.findall(rf"\$\{{{name}(\W\W?)", raw)
        assert uses and set(uses) == {":?"}, f"{name} has a default somewhere in compose.yml"


def test_a_missing_secret_stops_compose_with_its_name() -> None:
    # given env.example filled in, but for the TURN secret
    env = example_env()
    env["SPOOL_TURN_SECRET"] = ""

    # then
    with pytest.raises(MissingVariable, match="SPOOL_TURN_SECRET"):
        compose(env)


def test_fixed_addresses_agree() -> None:
    # given
    config = compose()
    ipam = config["networks"]["spool"]["ipam"]["config"][0]
    subnet, dynamic = ip_network(ipam["subnet"]), ip_network(ipam["ip_range"])
    env = environment(config["services"]["web1"])
    haproxy = environment(config["services"]["haproxy"])

    # then fixed addresses are unique, in the subnet, and outside the range Docker hands out
    fixed = [
        service["networks"]["spool"]["ipv4_address"]
        for service in config["services"].values()
        if isinstance(service.get("networks"), dict)
    ]
    assert len(fixed) == len(set(fixed))
    for value in fixed:
        assert ip_address(value) in subnet and ip_address(value) not in dynamic, value
    # and each service is where the others look for it
    assert f"@{address('postgres')}:5432/" in env["DATABASE_URL"]
    assert env["REDIS_SENTINELS"].split(",") == [
        f"{address(name)}:26379" for name in ("sentinel-1", "sentinel-2", "sentinel-3")
    ]
    redis_1 = f"{address('redis-1')} 6379"
    assert environment(config["services"]["redis-2"])["SPOOL_REDIS_REPLICA_OF"] == redis_1
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        assert environment(config["services"][name])["SPOOL_REDIS_MASTER"] == redis_1
    assert env["SPOOL_TRUSTED_PROXIES"] == address("haproxy")
    assert haproxy["SPOOL_WEB1"] == f"{address('web1')}:8000"
    assert haproxy["SPOOL_WEB2"] == f"{address('web2')}:8000"
    gateway = ipam["gateway"]
    assert env["SPOOL_JANUS_URL"] == env["SPOOL_MEDIA_JANUS_URL"] == f"ws://{gateway}:8188"
    assert environment(config["services"]["janus"])["SPOOL_JANUS_API_IP"] == gateway
    # the master's name in REDIS_URL is the one the Sentinels watch
    assert env["REDIS_URL"].endswith("@spool/0")
    assert "sentinel monitor spool MASTER_ADDRESS" in (DOCKER / "redis/sentinel.conf").read_text()
    # and HAProxy hands out its own health checks' host, the public one
    assert haproxy["SPOOL_PUBLIC_HOST"] == example_env()["SPOOL_PUBLIC_HOST"]
    assert env["SPOOL_PUBLIC_URL"] == f"https://{example_env()['SPOOL_PUBLIC_HOST']}"


def test_secrets_reach_both_sides_of_each_pair() -> None:
    # given
    config = compose()
    spool = environment(config["services"]["web1"])

    # then Janus, coturn and Kamailio get the same secrets as Spool
    janus = environment(config["services"]["janus"])
    assert janus["SPOOL_JANUS_API_SECRET"] == spool["SPOOL_JANUS_API_SECRET"] == SECRET
    assert (
        environment(config["services"]["turn"])["SPOOL_TURN_SECRET"] == spool["SPOOL_TURN_SECRET"]
    )
    kamailio = environment(config["services"]["kamailio"])
    assert kamailio["SPOOL_SIP_EDGE_SECRET"] == spool["SPOOL_SIP_EDGE_SECRET"]
    assert spool["SPOOL_SIP_EDGE"] == f"{kamailio['SPOOL_SIP_ADDRESS']}:5060"
    assert spool["SPOOL_SIP_LINE_ADDRESS"] == janus["SPOOL_SIP_ADDRESS"]
    # Prometheus scrapes with Spool's metrics token every Spool container: the web hosts' port
    # by names they answer to, the others' metrics port (SPOOL_METRICS_PORT's default)
    prometheus = config["services"]["prometheus"]
    assert environment(prometheus)["SPOOL_METRICS_TOKEN"] == spool["SPOOL_METRICS_TOKEN"]
    targets = re.findall(r'"([\w.-]+:\d+)"', prometheus["command"][0])
    assert 'env_int("SPOOL_METRICS_PORT", 9464' in SETTINGS
    expected = []
    for name, service in spool_services().items():
        role = service["command"][0]
        if role == "web":
            expected.append(f"{name}:8000")
            assert name in spool["SPOOL_ALLOWED_HOSTS"].split(",")
        elif role == "media":
            expected.append(f"{environment(service)['SPOOL_BIND']}:9464")
        elif role != "migrate":
            expected.append(f"{name}:9464")
    assert sorted(targets) == sorted(expected)
    # and the Redis password is the one in REDIS_URL
    for name in ("redis-1", "redis-2", "sentinel-1"):
        password = environment(config["services"][name])["REDIS_PASSWORD"]
        assert spool["REDIS_URL"] == f"redis://:{password}@spool/0"


@pytest.mark.parametrize(
    ("service", "path", "in_file", "in_command"),
    [
        (
            "janus",
            "janus/janus.transport.websockets.jcfg",
            'ws_ip = "127.0.0.1"',
            r"s/ws_ip = \"127.0.0.1\"/",
        ),
        (
            "janus",
            "janus/janus.plugin.sip.jcfg",
            '#local_ip = "10.0.0.5"',
            r"s/#local_ip = \"10.0.0.5\"/",
        ),
        ("janus", "janus/janus.jcfg", "\ngeneral: {\n", "s/^general: {/"),
        ("turn", "turnserver.conf", "\nstatic-auth-secret=", "s/^static-auth-secret=.*/"),
        ("kamailio", "kamailio/kamailio.cfg", '\n#!import_file "local.cfg"\n', "> local.cfg"),
    ],
)
def test_the_lines_compose_rewrites_are_in_their_files(
    service: str, path: str, in_file: str, in_command: str
) -> None:
    # given the command that copies a file and rewrites a line of it (a secret, an address)
    command = " ".join(raw_compose()["services"][service]["command"])

    # then the command rewrites that line, and the line is there to rewrite: a file edited
    # apart would otherwise leave Janus without its secret or Kamailio without its defines
    assert in_command in command
    assert in_file in (DOCKER / path).read_text()


def test_compose_config_accepts_it(tmp_path: Path) -> None:
    """Debian's docker-compose (1.29) checks the file against the compose schema without a
    daemon; where it is not installed, the checks above stand alone."""
    binary = require_tool("docker-compose")  # apt-get install docker-compose
    # given a copy of docker/ with env.example filled in as .env
    project = tmp_path / "docker"
    shutil.copytree(DOCKER, project, ignore=shutil.ignore_patterns(".env", "tls"))
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in example_env().items()))

    # when
    result = subprocess.run(
        [binary, "config"], cwd=project, capture_output=True, text=True, timeout=60
    )

    # then
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(services())
    assert resolved["services"]["web1"]["environment"]["SECRET_KEY"] == SECRET


# --- HAProxy --------------------------------------------------------------------------------------


def test_haproxy_accepts_its_configuration_with_composes_values(tmp_path: Path) -> None:
    haproxy = require_tool("haproxy")
    # given the variables the configuration reads, from compose.yml
    config = (DOCKER / "haproxy" / "haproxy.cfg").read_text()
    optional = set(re.findall(r"^\.if defined\((SPOOL_[A-Z0-9_]+)\)", config, re.MULTILINE))
    wanted = set(re.findall(r"\$\{(SPOOL_[A-Z0-9_]+)\}", config)) - optional
    service = services()["haproxy"]
    env = environment(service)
    assert wanted <= set(env), f"compose.yml gives HAProxy no {wanted - set(env)}"
    # its mounts are where those values point
    mounts = {mount.split(":")[1] for mount in service["volumes"]}
    assert "/etc/spool/haproxy" in mounts and env["SPOOL_LB_CERT"] in mounts
    assert service["tmpfs"] == [env["SPOOL_LB_RUN_DIR"]]
    assert service["command"][-1] == "/etc/spool/haproxy/haproxy.cfg"
    published = {port.split(":")[-1] for port in service["ports"]}
    assert published == {env["SPOOL_LB_BIND"].lstrip(":"), env["SPOOL_LB_HTTP_BIND"].lstrip(":")}
    # and a certificate where the folder would be, and a run folder
    certs = tmp_path / "tls"
    certs.mkdir()
    (certs / "spool.pem").write_bytes(self_signed_pem())
    env.update(SPOOL_LB_CERT=str(certs), SPOOL_LB_RUN_DIR=str(tmp_path))

    # when
    result = subprocess.run(
        [haproxy, "-c", "-f", str(DOCKER / "haproxy" / "haproxy.cfg")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )

    # then
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_drops_root_for_the_user_it_is_given(tmp_path: Path) -> None:
    haproxy = require_tool("haproxy")
    if os.geteuid() != 0:
        pytest.skip("only root can change user")
    # given the configuration with a user and group, as Debian's unit (root) starts it
    (tmp_path / "lb.pem").write_bytes(self_signed_pem())
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "SPOOL_LB_BIND": f"127.0.0.1:{port}",
        "SPOOL_LB_HTTP_BIND": f"127.0.0.1:{free_port()}",
        "SPOOL_LB_CERT": str(tmp_path / "lb.pem"),
        "SPOOL_LB_RUN_DIR": str(tmp_path),
        "SPOOL_PUBLIC_HOST": "127.0.0.1",
        "SPOOL_WEB1": f"127.0.0.1:{free_port()}",
        "SPOOL_WEB2": f"127.0.0.1:{free_port()}",
        "SPOOL_LB_USER": "nobody",
        "SPOOL_LB_GROUP": "nogroup",
    }
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(DOCKER / "haproxy" / "haproxy.cfg")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        # when it listens
        wait_for(lambda: (tmp_path / "admin.sock").exists(), 10)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

        # then it runs as that user and group, not as root
        status = Path(f"/proc/{process.pid}/status").read_text()
        uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        gid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
        assert set(uid) == {str(pwd.getpwnam("nobody").pw_uid)}
        assert set(gid) == {str(grp.getgrnam("nogroup").gr_gid)}
    finally:
        process.terminate()
        process.wait(timeout=10)


def self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "comms.example.org")])
    now = time.time()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(now - 60, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(now + 3600, datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- The image ------------------------------------------------------------------------------------


def test_the_image_installs_the_requirements_and_runs_as_spool() -> None:
    # given
    stages = dockerfile_stages()
    text = DOCKERFILE.read_text()

    # then the virtualenv is built from requirements.txt in its own stage and copied over
    assert "COPY requirements.txt" in stages["build"]
    assert re.search(r"pip install [^\n]*-r /tmp/requirements\.txt", stages["build"])
    assert "COPY --from=build /opt/spool/venv /opt/spool/venv" in stages["spool"]
    # Spool is the default target (the last stage), from Debian bookworm, with its tools
    assert list(stages)[-1] == "spool"
    assert re.search(r"^FROM debian:bookworm-slim AS base$", text, re.M)
    assert {"python3", "tini", "espeak-ng", "ffmpeg", "janus-tools"} <= apt_packages("spool")
    assert "janus" not in apt_packages("spool")  # Janus runs in the engines image
    assert {"coturn", "janus", "kamailio", "rtpengine-daemon"} <= apt_packages("engines")
    assert {"haproxy", "socat"} <= apt_packages("haproxy")
    assert "redis-server" in apt_packages("redis")
    # its processes run as the unprivileged user, uid 1000 as in every stage
    users = re.findall(r"^USER\s+(\S+)", stages["spool"], re.M)
    assert users and users[-1] not in ("root", "0")
    assert "--uid 1000" in stages["base"]
    # static files are collected, with no generated secret key left behind
    assert re.search(r"SECRET_KEY=\S+ python manage\.py collectstatic --noinput", text)
    # a health check, and serve as the entry point
    assert re.search(r"^HEALTHCHECK .*spool-healthcheck", stages["spool"], re.M)
    assert re.search(r'^ENTRYPOINT \["tini", "--", "spool"\]', stages["spool"], re.M)
    # compose's Janus user is this one, and the paths compose mounts exist in the image
    assert services()["janus"]["user"] == "1000:1000"
    for path in ("/var/lib/spool/media-cache", "/var/lib/spool-keys", "/var/lib/spool-recordings"):
        assert path in stages["base"]
        assert any(path in mount for s in services().values() for mount in s.get("volumes", []))


def test_dockerignore_keeps_secrets_and_bulk_out() -> None:
    # given
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    # then
    assert {".git", ".venv", "var", "tests/js/node_modules", "tests/screenshots"} <= ignored
    assert {"docker/.env", "docker/tls"} <= ignored


@pytest.fixture
def entrypoint(tmp_path: Path) -> Callable[..., list[str]]:
    """Runs the image's entry point with a `python` that prints what it was asked to run."""
    script = tmp_path / "spool"
    script.write_text(heredoc("/usr/local/bin/spool"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)

    def run(*args: str, role: str | None = None) -> list[str]:
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
        if role is not None:
            env["SPOOL_ROLE"] = role
        result = subprocess.run(
            ["sh", str(script), *args], env=env, capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    return run


def test_the_entry_point_serves_a_role_or_runs_a_command(
    entrypoint: Callable[..., list[str]], tmp_path: Path
) -> None:
    manage = "/opt/spool/app/manage.py"
    # then with no command it serves SPOOL_ROLE, or everything
    assert entrypoint() == [manage, "serve", "--role", "all"]
    assert entrypoint(role="worker") == [manage, "serve", "--role", "worker"]
    assert entrypoint("--demo", role="web") == [manage, "serve", "--role", "web", "--demo"]
    # a role as the command
    assert entrypoint("web") == [manage, "serve", "--role", "web"]
    assert (tmp_path / "spool-role").read_text().strip() == "web"
    assert entrypoint("worker,beat") == [manage, "serve", "--role", "worker,beat"]
    # and anything else is a manage.py command
    assert entrypoint("migrate", "--noinput") == [manage, "migrate", "--noinput"]
    assert entrypoint("create_resource", "demo") == [manage, "create_resource", "demo"]
    # and compose's commands are serve's roles, but for the migrations
    for name, service in spool_services().items():
        argv = entrypoint(*service["command"])
        if name == "migrate":
            assert argv == [manage, "migrate", "--noinput"]
        else:
            assert argv == [manage, "serve", "--role", service["command"][0]], name


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def healthz() -> Iterator[tuple[int, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_check_asks_web_containers_only(
    tmp_path: Path, healthz: tuple[int, type[_Answer]]
) -> None:
    # given the health check, and a /healthz answering on a port
    script = tmp_path / "spool-healthcheck"
    script.write_text(heredoc("/usr/local/bin/spool-healthcheck"))
    port, handler = healthz

    def check(role: str | None, status: int, *, port: int = port) -> int:
        marker = tmp_path / "spool-role"
        marker.unlink(missing_ok=True)
        if role is not None:
            marker.write_text(role + "\n")
        handler.status = status
        env = {"TMPDIR": str(tmp_path), "SPOOL_HTTP_PORT": str(port), "PATH": os.environ["PATH"]}
        run = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, timeout=20
        )
        return run.returncode

    # then a web container is healthy while its processes answer: 200, or 503 (a dependency down)
    assert check("web", 200) == 0
    assert check("all", 503) == 0
    assert check("web,worker", 500) == 1
    assert check("web", 200, port=free_port()) == 1  # nothing listens
    # and the other roles, and one-off commands, have no port to ask
    assert check("worker", 500) == 0
    assert check("media", 200, port=free_port()) == 0
    assert check(None, 200, port=free_port()) == 0


# --- Redis and its Sentinels ----------------------------------------------------------------------


def _start(role: str, directory: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    directory.mkdir()
    return subprocess.Popen(
        ["sh", str(DOCKER / "redis" / "start.sh"), role, *args],
        env={"PATH": os.environ["PATH"], "SPOOL_REDIS_DIR": str(directory), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_redis_and_a_sentinel_start_from_the_files_with_the_password(tmp_path: Path) -> None:
    require_tool("redis-server")
    # given a primary and its replica started by docker/redis/start.sh as compose starts them,
    # on loopback ports (the primary syncs at once rather than after 5 s: a test's impatience)
    password = "s3cret-" + SECRET[:8]
    primary_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    local = ("--bind", "127.0.0.1")
    processes = []
    try:
        processes.append(
            _start(
                "server",
                tmp_path / "primary",
                *("--port", str(primary_port), *local, "--repl-diskless-sync-delay", "0"),
                REDIS_PASSWORD=password,
            )
        )
        processes.append(
            _start(
                "server",
                tmp_path / "replica",
                *("--port", str(replica_port), *local),
                REDIS_PASSWORD=password,
                SPOOL_REDIS_REPLICA_OF=f"127.0.0.1 {primary_port}",
            )
        )
        replica = redis.Redis(port=replica_port, password=password)

        # then the replica follows the primary, authenticated with the password
        _wait_for(lambda: replica.info("replication")["master_link_status"] == "up", 20)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=primary_port, password="wrong").ping()

        # when a Sentinel starts from its file
        processes.append(
            _start(
                "sentinel",
                tmp_path / "sentinel",
                *("--port", str(sentinel_port), *local),
                REDIS_PASSWORD=password,
                SPOOL_REDIS_MASTER=f"127.0.0.1 {primary_port}",
            )
        )
        sentinel = redis.Redis(port=sentinel_port)

        # then it names the primary by address, and finds the replica through it (which takes
        # the password: the primary answers INFO to authenticated clients only)
        _wait_for(lambda: len(sentinel.execute_command("SENTINEL", "replicas", "spool")) == 1, 20)
        assert sentinel.execute_command("SENTINEL", "get-master-addr-by-name", "spool") == [
            b"127.0.0.1",
            str(primary_port).encode(),
        ]
        # and each keeps a copy of its configuration to rewrite, closed to other users
        for name, file, count in (("replica", "redis.conf", 2), ("sentinel", "sentinel.conf", 1)):
            copy = tmp_path / name / file
            assert copy.stat().st_mode & 0o077 == 0
            assert copy.read_text().count(password) == count
        assert (
            f"replicaof 127.0.0.1 {primary_port}" in (tmp_path / "replica/redis.conf").read_text()
        )
    finally:
        for process in processes:  # by PID: only what this test started
            process.terminate()
            process.wait(timeout=10)
