"""Rule files: every shipped file loads; bad files fail with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.ruleset import load_rule, load_rules
from tests.conftest import REPO

GOOD = """\
description: test rule
on: [email.sent, email.bounced]
window: {last: 10, of: email.sent}
measure: {ratio: [email.bounced, email.sent], min_sample: 5}
pause: {when: {gte: 0.2}}
"""


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_rule_file_loads() -> None:
    ruleset = load_rules(REPO / "rules")
    names = {rule.name for rule in ruleset.rules}
    assert "bounce-guard" in names
    assert len(ruleset) == len(list((REPO / "rules").glob("*.yaml")))


def test_shipped_bounce_guard_has_the_documented_thresholds() -> None:
    rule = load_rule(REPO / "rules" / "bounce-guard.yaml")
    assert rule.window.last == 200 and rule.window.of == "email.sent"
    assert rule.measure.min_sample == 50 and rule.measure.ratio == ("email.bounced", "email.sent")
    assert rule.pause.when.operator == ("gte", 0.03)
    assert rule.mode == "enforce"


def test_the_key_on_is_not_read_as_a_yaml_boolean(tmp_path: Path) -> None:
    rule = load_rule(_write(tmp_path, GOOD))
    assert rule.on == ("email.sent", "email.bounced")


def test_name_is_the_file_stem_and_digest_follows_content(tmp_path: Path) -> None:
    first = load_rule(_write(tmp_path, GOOD, "my-rule.yaml"))
    second = load_rule(_write(tmp_path, GOOD.replace("0.2", "0.3"), "my-rule.yaml"))
    assert first.name == "my-rule"
    assert first.digest != second.digest and len(first.digest) == 12


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[email.sent, email.bounced]", "[email.sent, email.bouncd]"), ":2: on.1: unknown event type 'email.bouncd'"),
        (("{last: 10,", "{last: 0,"), ":3: window.last: Input should be greater than or equal to 1"),
        (("{gte: 0.2}", "{gte: 0.2, lt: 1}"), ":5: pause.when: give exactly one operator"),
        (("{gte: 0.2}", "{between: 0.2}"), ":5: pause.when.between: Extra inputs are not permitted"),
        (("description: test rule", "description: test rule\nsevrity: high"), ":2: sevrity: Extra inputs"),
        (("min_sample: 5", "min_sample: many"), ":4: measure.min_sample: Input should be a valid integer"),
    ],
)
def test_invalid_rule_names_file_line_and_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_rule(path)
    assert f"{path}{expected}" in str(caught.value)


def test_when_operators_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":7: when.data.x: matches: invalid regular expression"):
        load_rule(_write(tmp_path, GOOD + "when:\n  data.x: {matches: '('}\n"))


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("campaign.vendor: {in: [smartleed]}", "campaign.vendor: unknown value 'smartleed'"),
        ("source: {eq: smartleed}", "source: unknown value 'smartleed'"),
        ("colour: {eq: 1}", r"colour.\[key\]: unknown field 'colour'"),
    ],
)
def test_when_fields_and_values_are_validated(tmp_path: Path, clause: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf":7: when.*{expected}"):
        load_rule(_write(tmp_path, GOOD + "when:\n  " + clause + "\n"))


def test_measured_types_must_be_listed_in_on(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'email.bounced' is measured but not listed in `on`"):
        load_rule(_write(tmp_path, GOOD.replace("on: [email.sent, email.bounced]", "on: email.sent")))


def test_broken_yaml_reports_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "description: x\non: [email.sent\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_rule(path)


def test_reason_template_placeholders_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pause.reason: bad template"):
        load_rule(_write(tmp_path, GOOD.replace("{when: {gte: 0.2}}", "{when: {gte: 0.2}, reason: '{rate}'}")))


def test_load_rules_collects_problems_of_every_file(tmp_path: Path) -> None:
    _write(tmp_path, GOOD.replace("0.2", "x"), "a.yaml")
    _write(tmp_path, "- not a mapping\n", "b.yaml")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    assert "a.yaml:5" in str(caught.value) and "b.yaml:1: a rule file must be a mapping" in str(caught.value)


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope")


def test_ruleset_indexes_rules_by_event_type(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    ruleset = load_rules(tmp_path)
    assert [r.name for r in ruleset.for_type("email.bounced")] == ["a"]
    assert ruleset.for_type("email.replied") == ()


def test_every_complete_example_in_the_rule_reference_is_valid(tmp_path: Path) -> None:
    text = (REPO / "rules" / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    complete = [b for b in blocks if b.startswith("description:")]
    assert len(complete) >= 2
    for n, block in enumerate(complete):
        load_rule(_write(tmp_path, block, f"example-{n}.yaml"))


def test_a_cooldown_without_release_names_its_line_and_what_to_change(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "cooldown: [24h, 72h]\n")
    with pytest.raises(ConfigError) as caught:
        load_rule(path)
    message = str(caught.value)
    assert f"{path}:6: cooldown: a cooldown is the minimum hold before this rule's own `release`" in message
    assert "its holds end only by a person. Remove `cooldown`, or add `release`" in message
    load_rule(_write(tmp_path, GOOD + "release: {when: {lt: 0.05}, after: 1h}\ncooldown: [24h, 72h]\n"))


def test_an_event_rule_cannot_have_a_cooldown(tmp_path: Path) -> None:
    text = "description: d\non: account.disconnected\nscope: sender_account\naction: {do: pause}\ncooldown: 1h\n"
    with pytest.raises(ConfigError, match=r":5: cooldown: an event rule has no `release`.*remove `cooldown`"):
        load_rule(_write(tmp_path, text))


def test_cooldown_steps_must_be_positive(tmp_path: Path) -> None:
    text = GOOD + "release: {when: {lt: 0.05}}\ncooldown: [24h, 0s]\n"
    with pytest.raises(ConfigError, match=r":7: cooldown: every cooldown step must be positive"):
        load_rule(_write(tmp_path, text))


def test_shipped_cooldowns_belong_to_rules_that_release() -> None:
    rules = {rule.name: rule for rule in load_rules(REPO / "rules").rules}
    assert [name for name, rule in rules.items() if rule.cooldown] == ["reply-rate-floor"]
    floor = rules["reply-rate-floor"]
    assert floor.release is not None and [c.total_seconds() / 3600 for c in floor.cooldown] == [24, 72, 168]
    for name in ("spam-complaint-guard", "unsubscribe-spike-guard"):
        assert rules[name].release is None and "No release, so no cooldown" in (REPO / "rules" / f"{name}.yaml").read_text()


def test_an_event_rules_key_is_its_scope() -> None:
    rules = {rule.name: rule for rule in load_rules(REPO / "rules").rules}
    assert rules["sender-disconnected"].key == "sender_account"
    assert rules["alert-pause"].key == "campaign" and rules["bounce-guard"].key == "campaign"


def test_rule_files_cite_documents_under_docs() -> None:
    for path in [*(REPO / "rules").glob("*.yaml"), REPO / "rules" / "README.md"]:
        text = path.read_text()
        for doc in ("guardrails.md", "vendors.md"):
            assert text.count(doc) == text.count(f"docs/{doc}"), f"{path.name} cites {doc} outside docs/"
