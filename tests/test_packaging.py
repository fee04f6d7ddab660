"""docker-compose.yml is valid Compose and runs a fleet (PostgreSQL, RabbitMQ, two web, three workers) that
`--scale worker=N` keeps safe; its health checks are the processes' own; the Dockerfile and compose agree
with the CLI and the settings."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.cli import _parser
from bot.config import Settings, load_settings
from bot.vendors import registry
from tests.conftest import REPO

SCHEMA = REPO.parent / "shared" / "data" / "compose-spec.json"
#: the services that run campaign-guard are built from this repository
APP_IMAGE = "campaign-guard:local"
#: Compose's `${VAR}`, `${VAR:-default}` (unset or empty) and `${VAR-default}` (unset)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


@pytest.fixture
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def interpolate(value: object, host: Mapping[str, str]) -> str:
    """`value` as Compose passes it into the container when the host's environment is `host`."""

    def one(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        given = host.get(name)
        if operator == ":-" and not given:
            return default
        if operator == "-" and given is None:
            return default
        return given or ""

    text = _VARIABLE.sub(one, str(value))
    assert "$" not in text, f"a form of interpolation this test does not know: {value!r}"
    return text


def container_env(service: Mapping[str, Any], host: Mapping[str, str] | None = None) -> dict[str, str]:
    return {name: interpolate(value, host or {}) for name, value in service["environment"].items()}


def app_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run campaign-guard (built from this repository), by name."""
    return {name: service for name, service in compose["services"].items()
            if service.get("image") == APP_IMAGE or "build" in service}


def role(service: Mapping[str, Any]) -> str:
    command: str = _parser().parse_args(service["command"]).command
    return command


def role_of(service: Mapping[str, Any]) -> str | None:
    """`web` or `worker` for a service that runs campaign-guard, else None."""
    return role(service) if service.get("image") == APP_IMAGE or "build" in service else None


def instances(service: Mapping[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


# --- the file is Compose ---------------------------------------------------------------------------------------

def test_compose_validates_against_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    if not SCHEMA.exists():
        pytest.skip("the Compose schema lives in ../shared/data (present in CI)")
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)  # the spec's declared draft (its $schema URL is not bundled)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    assert list(validator.iter_errors({"services": {"web": {"helthcheck": {}}}})), "the schema must catch typos"


# --- the fleet -------------------------------------------------------------------------------------------------

def test_compose_runs_postgres_rabbitmq_two_web_and_three_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert "management" in services["rabbitmq"]["image"]
    apps = app_services(compose)
    assert set(services) == {"postgres", "rabbitmq", *apps}
    counts: dict[str, int] = {}
    for service in apps.values():
        counts[role(service)] = counts.get(role(service), 0) + instances(service)
    assert counts == {"web": 2, "worker": 3}
    assert all(instances(service) == 1 for name, service in services.items() if name not in apps)


def test_compose_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    parser = _parser()
    for name, service in app_services(compose).items():
        args = parser.parse_args(service["command"])
        assert args.command in ("web", "worker"), name


def test_the_servers_have_health_checks_that_ask_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]["healthcheck"]["test"]
    assert postgres[:2] == ["CMD", "pg_isready"]
    assert postgres[postgres.index("-h") + 1] == "127.0.0.1"     # TCP: not the init-time socket-only server
    rabbitmq = services["rabbitmq"]["healthcheck"]["test"]
    assert rabbitmq[:2] == ["CMD", "rabbitmq-diagnostics"]


def test_every_service_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in app_services(compose).items():
        needs = {"web": {"rabbitmq"}, "worker": {"rabbitmq", "postgres"}}[role(service)]
        depends_on = service["depends_on"]
        assert set(depends_on) >= needs, name
        for dependency, condition in depends_on.items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "test" in services[dependency]["healthcheck"], dependency


def _web_check(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test    # the slim image has python, not curl
    code: str = test[3]
    return code


def test_each_campaign_guard_service_checks_its_own_process(compose: dict[str, Any]) -> None:
    for name, service in app_services(compose).items():
        if role(service) == "web":
            port = container_env(service)["BOT_HTTP_PORT"]
            url = re.search(r"urlopen\('([^']+)'", _web_check(service))
            assert url is not None, name
            assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/(readyz|healthz)", url.group(1)), (name, url.group(1))
            assert container_env(service)["BOT_HTTP_HOST"] == "0.0.0.0", name
        else:
            test = service["healthcheck"]["test"]
            assert test[:2] == ["CMD", "campaign-guard"], name
            assert _parser().parse_args(test[2:]).command == "healthcheck", name
            # its connect timeout is 5 s: Docker must not kill it before it can say why
            assert float(service["healthcheck"]["timeout"].removesuffix("s")) > 5, name


async def test_the_web_health_check_passes_on_a_ready_web_and_fails_on_one_that_is_not(
        compose: dict[str, Any], aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.web import create_app
    from tests.web.conftest import FakeBroker, make_settings

    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)
    broker = FakeBroker()
    server = await aiohttp_server(create_app(make_settings(), broker))
    code = _web_check(compose["services"]["web-1"]).replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        return await process.wait()

    assert await check() == 0
    broker.is_ready = False                     # 503: urllib raises, python exits 1
    assert await check() != 0
    await server.close()
    assert await check() != 0                   # nobody answers


async def test_the_worker_health_check_passes_while_this_hosts_worker_beats(compose: dict[str, Any]) -> None:
    """What runs in a worker's container: another process of the same host (its UTS and pid namespace)."""
    from bot.state.pg_schema import upgrade
    from bot.state.pg_workers import Heartbeat
    from bot.state.postgres import open_pool
    from tests.postgres_db import fresh_database

    worker = compose["services"]["worker"]
    test = worker["healthcheck"]["test"]
    executable = shutil.which(test[1], path=str(Path(sys.executable).parent))
    assert executable is not None

    async with fresh_database() as url:
        env = {**container_env(worker), "BOT_STATE_URL": url, "PATH": os.environ.get("PATH", "")}

        async def check() -> int:
            process = await asyncio.create_subprocess_exec(executable, *test[2:], env=env,
                                                           stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.DEVNULL)
            return await process.wait()

        async with open_pool(url, max_size=2) as pool:
            await upgrade(pool)
            assert await check() == 1                           # no worker has beaten yet
            async with Heartbeat.open(pool):
                assert await check() == 0
            assert await check() == 1                           # a stopped worker deletes its row


# --- `docker compose up --scale worker=N` ----------------------------------------------------------------------

def test_scaled_services_publish_no_port_and_take_no_fixed_name(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert instances(worker) == 3
    for name, service in compose["services"].items():
        if instances(service) > 1 or role_of(service) == "worker":
            # a fixed host port or name fails the second replica; a shared host name (set, or the host's
            # network/UTS namespace) gives every replica the same heartbeat row (host, pid 1)
            for key in ("container_name", "ports", "hostname"):
                assert key not in service, (name, key)
            for key in ("network_mode", "uts", "pid"):
                assert service.get(key) in (None, ""), (name, key)


def test_the_web_instances_publish_distinct_host_ports(compose: dict[str, Any]) -> None:
    published = [str(port).rsplit(":", 1)[0] for service in app_services(compose).values()
                 if role(service) == "web" for port in service.get("ports", [])]
    assert len(published) == 2 and len(set(published)) == 2, published
    assert all("-" not in host_port for host_port in published), "port ranges and replicas race in Compose v2"


def test_postgres_has_connections_for_many_workers(compose: dict[str, Any]) -> None:
    from bot.state.open import pool_size

    command = compose["services"]["postgres"]["command"]
    setting = next(command[i + 1] for i, word in enumerate(command) if word == "-c"
                   and command[i + 1].startswith("max_connections="))
    prefetch = int(container_env(compose["services"]["worker"])["BOT_PREFETCH"])
    assert int(setting.partition("=")[2]) >= 10 * pool_size(Settings(prefetch=prefetch)) + 10, setting


# --- settings and secrets --------------------------------------------------------------------------------------

def _passed_through() -> dict[str, str]:
    """Name → what Compose must pass for it: `${NAME:-}` (unset stays unset), or the vendor's own base URL."""
    expected = {name: f"${{{name}:-}}" for name in (
        "BOT_WEBHOOK_TOKEN", "BOT_ALERTMANAGER_TOKEN", "BOT_GRAFANA_WEBHOOK_SECRET", "BOT_SLACK_SIGNING_SECRET",
        "BOT_SLACK_BOT_TOKEN", "BOT_SLACK_CHANNEL", "BOT_ACCOUNTS_FILE", "BOT_INVENTORY_FILE")}
    expected |= {f"BOT_{field.upper()}": f"${{BOT_{field.upper()}:-}}" for field in Settings.model_fields
                 if re.fullmatch(r"slack_[a-z]+_users", field)}
    for spec in registry.specs():
        for key in ("api_key", "webhook_secret"):
            if key in spec.settings:
                name = f"BOT_{spec.name.upper()}_{key.upper()}"
                expected[name] = f"${{{name}:-}}"
        name = f"BOT_{spec.name.upper()}_BASE_URL"
        expected[name] = f"${{{name}:-{spec.settings['base_url'].default}}}"
    return expected


def test_compose_passes_every_secret_slack_alert_and_vendor_setting_through(compose: dict[str, Any]) -> None:
    """Without them Slack, alerts, the vendors and the accounts cannot be configured in Compose."""
    expected = _passed_through()
    assert {"BOT_SLACK_PAUSE_USERS", "BOT_SLACK_RESUME_USERS", "BOT_SLACK_APPROVE_USERS",
            "BOT_LEMLIST_WEBHOOK_SECRET", "BOT_INSTANTLY_API_KEY", "BOT_INBOX_BASE_URL"} <= set(expected)
    fields = {f"BOT_{name.upper()}" for name in Settings.model_fields}
    for name, service in app_services(compose).items():
        environment = service["environment"]
        assert set(environment) <= fields, (name, set(environment) - fields)    # no typo: every name is a setting
        missing = {key: value for key, value in expected.items() if environment.get(key) != value}
        assert missing == {}, name


def test_the_compose_environment_is_valid_settings_with_nothing_set_on_the_host(
        compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)
    for name, service in app_services(compose).items():
        with monkeypatch.context() as patch:
            for key, value in container_env(service).items():
                patch.setenv(key, value)
            settings = load_settings()                # ConfigError (e.g. an empty base URL) fails the test
        assert settings.webhook_token is None and settings.slack_signing_secret is None, name   # fail closed
        assert settings.uses_postgres, name


def test_web_and_worker_share_postgresql_and_rabbitmq(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for host in ({}, {"POSTGRES_PASSWORD": "s3cret", "RABBITMQ_DEFAULT_USER": "cg", "RABBITMQ_DEFAULT_PASS": "pw"}):
        postgres = container_env(services["postgres"], host)
        rabbitmq = container_env(services["rabbitmq"], host)
        for name, service in app_services(compose).items():
            env = container_env(service, host)
            state = urlsplit(env["BOT_STATE_URL"])
            assert state.scheme == "postgresql", name
            assert (state.hostname, state.port) == ("postgres", 5432), name
            assert (state.username, state.password, state.path) == (
                postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], f"/{postgres['POSTGRES_DB']}"), name
            broker = urlsplit(env["BOT_BROKER_URL"])
            assert broker.scheme == "amqp" and (broker.hostname, broker.port) == ("rabbitmq", 5672), name
            assert (broker.username, broker.password) == (
                rabbitmq["RABBITMQ_DEFAULT_USER"], rabbitmq["RABBITMQ_DEFAULT_PASS"]), name


# --- the image -------------------------------------------------------------------------------------------------

def test_dockerfile_runs_the_console_script() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["campaign-guard"]' in text and "HEALTHCHECK" in text
    assert "COPY rules" in text


def test_dockerignore_keeps_secrets_out_and_what_the_image_needs_in() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", "config/", ".venv/", ".git/"} <= ignored
    copied = re.findall(r"^COPY (.+) \S+$", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    for source in " ".join(copied).split():
        assert source not in ignored and f"{source}/" not in ignored, source
