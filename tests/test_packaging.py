"""docker-compose.yml is valid Compose; the Dockerfile and compose agree with the CLI."""

from __future__ import annotations

import json

import pytest
import yaml

from bot.cli import _parser
from tests.conftest import REPO

SCHEMA = REPO.parent / "shared" / "data" / "compose-spec.json"


@pytest.fixture
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_validates_against_the_compose_specification_schema(compose: dict) -> None:
    if not SCHEMA.exists():
        pytest.skip("the Compose schema lives in ../shared/data (present in CI)")
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)  # the spec's declared draft (its $schema URL is not bundled)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    assert list(validator.iter_errors({"services": {"web": {"helthcheck": {}}}})), "the schema must catch typos"


def test_compose_has_rabbitmq_web_and_worker_with_health_checks(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"rabbitmq", "web", "worker"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
    assert "management" in services["rabbitmq"]["image"]
    assert services["web"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    for role in ("web", "worker"):
        assert services[role]["environment"]["BOT_BROKER_URL"].startswith("amqp://")


def test_compose_commands_are_real_cli_commands(compose: dict) -> None:
    parser = _parser()
    for role in ("web", "worker"):
        args = parser.parse_args(compose["services"][role]["command"])
        assert args.command == role


def test_dockerfile_runs_the_console_script() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["campaign-guard"]' in text and "HEALTHCHECK" in text
    assert "COPY rules" in text


def test_compose_passes_the_slack_alert_and_inventory_settings_through(compose: dict) -> None:
    """Without them Slack answers 401 and alerts and the inventory file cannot be configured in Compose."""
    from bot.config import Settings

    environment = compose["x-bot-environment"]
    fields = {f"BOT_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= fields, set(environment) - fields          # no typo: every name is a setting
    for name in ("BOT_SLACK_SIGNING_SECRET", "BOT_SLACK_BOT_TOKEN", "BOT_SLACK_CHANNEL", "BOT_SLACK_PAUSE_USERS",
                 "BOT_SLACK_RESUME_USERS", "BOT_SLACK_APPROVE_USERS", "BOT_ALERTMANAGER_TOKEN",
                 "BOT_GRAFANA_WEBHOOK_SECRET", "BOT_INVENTORY_FILE", "BOT_INVENTORY_REFRESH"):
        assert str(environment[name]).startswith(f"${{{name}"), name        # passed through from the shell/.env
    for role in ("web", "worker"):
        assert compose["services"][role]["environment"]["BOT_SLACK_SIGNING_SECRET"] == "${BOT_SLACK_SIGNING_SECRET:-}"


def test_the_worker_health_check_is_a_real_liveness_command(compose: dict) -> None:
    test = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "campaign-guard"]
    assert _parser().parse_args(test[2:]).command == "healthcheck"
