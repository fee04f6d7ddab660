"""schemathesis against the RUNNING app: requests generated from openapi.yaml (valid and invalid data), each
signed like its real sender would sign it; no answer may be a 5xx, and every answer must conform to the
spec (documented status, content type, body schema, headers). Bounded: BOT_SCHEMATHESIS_EXAMPLES per
operation (default 25), derandomized under CI so a run is reproducible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import REPO
from tests.hostile.live import Live, live_app

EXAMPLES = int(os.environ.get("BOT_SCHEMATHESIS_EXAMPLES", "25"))
CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": bool(os.environ.get("CI"))},
    "phases": {"stateful": {"enabled": False}},
})
schema = schemathesis.openapi.from_path(REPO / "openapi.yaml", config=CONFIG)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    state_dir: Path = tmp_path_factory.mktemp("schemathesis")
    with live_app(state_dir) as app:
        yield app


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_running_app_answers_as_documented(case: schemathesis.Case, live: Live) -> None:
    case.call_and_validate(base_url=live.url, session=live.session, checks=CHECKS, timeout=10)
