"""openapi.yaml describes exactly the app's routes, with the auth, bodies and answers the code has.

The paths and methods must equal the router's (a new route without a spec entry, or a spec entry
without a route, fails here); every intake documents 400/401/413 with the error body and, where the
broker is awaited, 503 with Retry-After; the canonical vocabulary (event types, campaign ids) is the
code's; and each documented example body, correctly signed, is accepted by the app.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
import yaml
from schemathesis.core.result import Err

from bot.events import ACCOUNT_NAME, EVENT_TYPES
from bot.vendors import registry
from bot.web import create_app
from tests.conftest import REPO
from tests.hostile.endpoints import EXAMPLES as ROUTE_EXAMPLES
from tests.hostile.endpoints import Endpoint, credentials, discover, hostile_settings
from tests.hostile.harness import Request, assert_contract, exchange
from tests.web.conftest import FakeBroker

SPEC: dict[str, Any] = yaml.safe_load((REPO / "openapi.yaml").read_text())
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
OPERATIONS = [(path, method, op) for path, item in SPEC["paths"].items()
              for method, op in item.items() if method in METHODS]
INTAKES = [(path, op) for path, method, op in OPERATIONS if method == "post"]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s."""
    while "$ref" in node:
        target: Any = SPEC
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_spec_has_exactly_the_routes_of_the_router() -> None:
    routed = set(discover(create_app(hostile_settings(), FakeBroker())))
    documented = {Endpoint(example, method.upper()) for path, method, _ in OPERATIONS
                  for example in ROUTE_EXAMPLES.get(path, [path])}
    assert documented - routed == set(), "documented in openapi.yaml but not routed"
    assert routed - documented == set(), "routed but missing from openapi.yaml"


def test_the_spec_loads_and_every_operation_resolves() -> None:
    schema = schemathesis.openapi.from_path(REPO / "openapi.yaml")
    results = list(schema.get_all_operations())
    assert [result.err() for result in results if isinstance(result, Err)] == []
    assert len(results) == len(OPERATIONS)


@pytest.mark.parametrize(("path", "op"), INTAKES, ids=[path for path, _ in INTAKES])
def test_every_intake_documents_auth_and_its_refusals(path: str, op: dict[str, Any]) -> None:
    assert op.get("security"), f"{path}: no security requirement"
    schemes = SPEC["components"]["securitySchemes"]
    assert all(name in schemes for requirement in op["security"] for name in requirement)
    for status in ("401", "413"):
        error = resolve(op["responses"][status])["content"]["application/json"]["schema"]
        assert resolve(error) == SPEC["components"]["schemas"]["Error"], f"{path} {status}"
    if path.startswith("/webhooks/"):
        assert {"202", "400", "401", "413", "503"} <= set(op["responses"]), path
    if "503" in op["responses"]:
        assert resolve(op["responses"]["503"])["headers"]["Retry-After"]["required"] is True


def test_the_canonical_vocabulary_is_the_codes() -> None:
    event = SPEC["components"]["schemas"]["CanonicalEvent"]["properties"]
    assert event["type"]["enum"] == sorted(EVENT_TYPES)
    campaign = re.compile(SPEC["components"]["schemas"]["CampaignText"]["pattern"])
    for spec in registry.specs():
        assert f"{spec.name}(@{ACCOUNT_NAME.pattern})?:{spec.campaign_id.pattern}" in campaign.pattern
    assert campaign.fullmatch("smartlead:1843021") and not campaign.fullmatch("mailchimp:cam_1")
    assert campaign.fullmatch("smartlead@acme:1843021") and not campaign.fullmatch("smartlead@Acme:1")


EXAMPLES = [(path, op) for path, op in INTAKES
            if "example" in resolve(next(iter(op["requestBody"]["content"].values()))["schema"])]


@pytest.mark.parametrize(("path", "op"), EXAMPLES, ids=[path for path, _ in EXAMPLES])
async def test_each_documented_example_is_accepted(path: str, op: dict[str, Any]) -> None:
    media, content = next(iter(op["requestBody"]["content"].items()))
    example = resolve(content["schema"])["example"]
    body = json.dumps(example).encode()
    headers, params = credentials(path, body)
    request = Request("POST", path, body, {**headers, "Content-Type": media}, params)
    answer = await exchange(request)
    assert_contract(request, answer)
    assert answer.status == 202, answer.body
