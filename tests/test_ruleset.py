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


# Issue 13: every new key's mistakes name file, line and field ------------------------------------------------

METRICS = """\
description: test rule
on: campaign.metrics
measure:
  value: data.rate
  sample: data.sent
pause:
  when: {lt: 0.2}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # warn
        (GOOD + "warn: {when: {gte: 0.3}}\n", (":6: warn.when: the warning threshold 0.3 must come before the pause "
                                             "threshold 0.2 (lower)")),
        (GOOD + "warn:\n  when: {lte: 0.1}\n", (":7: warn.when: `warn.when` must point the same way as `pause.when` "
                                              "(gte): use gt or gte")),
        (GOOD + "warn:\n  when: {gte: 0.1}\n  clear: {gte: 0.05}\n", (":8: warn.clear: `warn.clear` says when the "
                                                                    "value is back: use lt or lte")),
        (GOOD.replace("{gte: 0.2}", "{eq: 1}") + "warn: {when: {gte: 0.5}}\n",
         ":6: warn: a warning needs a pause threshold it comes before"),
        (GOOD + "warn:\n  when: {gte: 0.1}\n  min_sample: 0\n", ":8: warn.min_sample: Input should be greater"),
        (GOOD + "warn:\n  when: {gte: 0.1}\n  reason: '{rate}'\n", ":8: warn.reason: bad template"),
        (GOOD + "warn:\n  when: {gte: 0.1}\n  clear: {lt: 0.05}\n  sevrity: high\n",
         ":9: warn.sevrity: Extra inputs are not permitted"),
        ("description: d\non: account.disconnected\naction: {do: pause}\nwarn: {when: {gte: 1}}\n",
         ":4: warn: an event rule (`action`) has no window, measure, pause, warn"),
        # shared_hold
        (GOOD + "shared_hold: r\n", ":6: shared_hold: a rule's own hold needs no `shared_hold`"),
        (GOOD + "shared_hold: Bounce Guard\n", ":6: shared_hold: String should match pattern"),
        (GOOD + "release: {when: {lt: 0.1}}\nshared_hold: other\n",
         ":6: release: a rule pausing under another rule's hold cannot `release` it"),
        # value sources
        (METRICS.replace("data.rate", "campaign.vendor"), (":4: measure.value.0: 'campaign.vendor' is not a figure "
                                                          "the event carries")),
        (METRICS.replace("data.rate", "[data.rate, {ratio: [data.replied, sent]}]"),
         ":4: measure.value.1.ratio.1: 'sent' is not a figure the event carries"),
        (METRICS.replace("value: data.rate", "value:\n    - data.rate\n    - {ratio: [data.a]}"),
         ":6: measure.value.1.ratio.1: Field required"),
        (METRICS.replace("value: data.rate", "value: []"), ":4: measure.value: Value should have at least 1 item"),
        (METRICS.replace("value: data.rate", "value: 5"), ":4: measure.value.0: Input should be a valid string"),
        (METRICS.replace("sample: data.sent", "sample: sent"), ":5: measure.sample: 'sent' is not a figure"),
        (METRICS + "window: {per: campaign, last: 10, of: campaign.metrics}\n",
         ":8: window: a `value` or `any` measure reads the event's own figures: it has no window"),
        (GOOD.replace("min_sample: 5}", "min_sample: 5, sample: data.sent}"),
         ":4: measure.sample: `sample` goes with `value` or `any`"),
        (GOOD.replace("min_sample: 5}", "min_sample: 5, max_age: 1h}"),
         ":4: measure.max_age: `max_age` goes with `value` or `any`"),
        (METRICS.replace("sample: data.sent", "sample: data.sent\n  max_age: 0s"),
         ":6: measure.max_age: must be a positive duration"),
        # any
        (METRICS.replace("value: data.rate", "any: {data.smtp_ok: {eq: false}}"),
         ":4: measure.any: `any` is a list of alternatives"),
        (METRICS.replace("value: data.rate", "any:\n    - data.smtp_ok: {eq: false}\n    - data.x: {eq: 1, lt: 2}"),
         ":6: measure.any.1.data.x: give exactly one operator"),
        (METRICS.replace("value: data.rate", "any:\n    - data.smtp_ok: {eq: false}\n    - colour: {eq: 1}"),
         r":6: measure.any.1.colour.[key]: unknown field 'colour'"),
        (METRICS.replace("value: data.rate", "any:\n    - source: {eq: smartleed}"),
         ":5: measure.any.0.source: unknown value 'smartleed'"),
        (METRICS.replace("value: data.rate", "value: data.rate\n  any: [{data.x: {eq: 1}}]"),
         ":4: measure: give exactly one of `ratio`, `count`, `absent`, `value` or `any`"),
        # absent, since, ages
        (("description: d\non: [email.sent, email.replied]\nwindow: {duration: 1h}\nmeasure: {absent: email.replied}\n"
         "pause: {when: {eq: 0}}\n"), ":3: window: an absence is judged against a number of other events"),
        (("description: d\non: [email.sent, email.replied]\nwindow: {since: email.sent}\nmeasure: {absent: email.sent}\n"
         "pause: {when: {eq: 0}}\n"), ":4: measure.absent: `absent` counts another type than the window's own base"),
        (("description: d\non: [email.sent]\nwindow: {since: email.sent}\nmeasure: {absent: email.replied}\n"
         "pause: {when: {eq: 0}}\n"), ":2: on: 'email.replied' is measured but not listed in `on`"),
        (("description: d\non: [email.sent, email.replied]\nwindow: {since: email.sent, of: email.sent}\n"
         "measure: {absent: email.replied}\npause: {when: {eq: 0}}\n"), ":3: window.of: `of` goes with `last`"),
        (("description: d\non: [email.sent, email.replied]\nwindow: {since: email.sent, last: 5, of: email.sent}\n"
         "measure: {absent: email.replied}\npause: {when: {eq: 0}}\n"),
         ":3: window: give one of `last` (with `of`), `duration` or `since`"),
        (("description: d\non: [email.sent, email.replied]\nwindow: {since: email.sennt}\n"
         "measure: {absent: email.replied}\npause: {when: {eq: 0}}\n"), ":3: window.since: unknown event type"),
        (GOOD.replace("min_sample: 5}", "min_sample: 5,\n  min_age: 48h}"),
         ":5: measure.min_age: `min_age` counts from the window's first `since` event"),
        (METRICS.replace("sample: data.sent", "sample: data.sent\n  min_age: 48h"),
         ":6: measure.min_age: a `value` or `any` measure has no window to age: give `age_from"),
        (METRICS.replace("sample: data.sent", "sample: data.sent\n  age_from: data.started_at"),
         ":6: measure.age_from: `age_from` says where a `min_age` counts from"),
        (METRICS.replace("sample: data.sent", "sample: data.sent\n  min_age: 2 days\n  age_from: data.started_at"),
         ":6: measure.min_age: invalid duration '2 days'"),
        (METRICS.replace("sample: data.sent", "sample: data.sent\n  min_age: 48h\n  age_from: started_at"),
         ":7: measure.age_from: 'started_at' is not a figure"),
        (GOOD.replace("ratio: [email.bounced, email.sent]", "ratio: [email.bounced, email.bounced]"),
         ":4: measure.ratio.1: the ratio's denominator must be the window's `of` (or `since`) event type"),
        # reason placeholders of measured rules
        (METRICS.replace("when: {lt: 0.2}", "when: {lt: 0.2}\n  reason: '{data[email]:.1%} {matched} {age} {nope}'"),
         ":8: pause.reason: bad template ('nope')"),
    ],
)
def test_new_keys_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rule(path)
    assert f"{path}{expected}" in str(caught.value).replace(r"\[key\]", "[key]")


def test_reason_placeholders_of_measured_rules_load(tmp_path: Path) -> None:
    text = METRICS.replace("when: {lt: 0.2}", "when: {lt: 0.2}\n  reason: '{data[email]:.1%} {matched} {age} "
                                              "{sample} {key} {value:.2%}'")
    assert load_rule(_write(tmp_path, text)).pause is not None


def _directory(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        _write(tmp_path, text, f"{name}.yaml")
    return tmp_path


SHARING = METRICS + "shared_hold: guard\n"


@pytest.mark.parametrize(
    ("guard", "expected"),
    [
        (None, "shared_hold: no rule 'guard' in this directory; known: sharer"),
        ("description: d\non: account.disconnected\naction: {do: pause}\n", "'guard' is an event rule"),
        (GOOD + "release: {when: {lt: 0.1}}\n", "'guard' releases its own holds"),
        (GOOD.replace("{last: 10,", "{per: sender_domain, last: 10,"),
         "'guard' keeps its holds per sender_domain, this rule per campaign"),
        (METRICS + "shared_hold: sharer\n", "'guard' pauses under 'sharer''s hold itself"),
    ],
)
def test_a_shared_hold_must_name_a_fitting_rule_of_the_directory(tmp_path: Path, guard: str | None,
                                                                 expected: str) -> None:
    directory = _directory(tmp_path, sharer=SHARING, **({"guard": guard} if guard else {}))
    with pytest.raises(ConfigError) as caught:
        load_rules(directory)
    assert f"{directory / 'sharer.yaml'}:8: shared_hold: " in str(caught.value) and expected in str(caught.value)


def test_a_shared_hold_of_a_fitting_rule_loads_and_a_broken_one_reports_only_its_own_errors(tmp_path: Path) -> None:
    ruleset = load_rules(_directory(tmp_path, sharer=SHARING, guard=GOOD))
    assert {r.name: r.hold_rule for r in ruleset.rules} == {"sharer": "guard", "guard": "guard"}
    (tmp_path / "guard.yaml").write_text(GOOD.replace("0.2", "x"))
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    assert "guard.yaml:5: pause.when.gte" in str(caught.value) and ": shared_hold:" not in str(caught.value)


def test_the_shipped_rules_that_share_a_hold() -> None:
    rules = {rule.name: rule for rule in load_rules(REPO / "rules").rules}
    assert {name: rule.shared_hold for name, rule in rules.items() if rule.shared_hold} == {
        "bounce-guard-analytics": "bounce-guard", "no-outcome-analytics": "no-outcome"}
    for name in ("bounce-guard", "bounce-guard-analytics", "no-outcome", "no-outcome-analytics"):
        assert rules[name].release is None                      # neither can lift the hold the other placed
    assert rules["bounce-guard-analytics"].pause.when.operator == rules["bounce-guard"].pause.when.operator
    assert rules["mailbox-health"].key == "sender_account" and rules["mailbox-health"].release is not None
