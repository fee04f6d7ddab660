"""The operations files cannot rot: deploy/grafana/campaign-guard.json and deploy/prometheus/alerts.yml (and the
sample prometheus.yml) parse, have the shape Grafana and Prometheus import, and name only metrics bot/metrics.py
registers; with promtool installed, Prometheus itself checks the rules, the configuration and every dashboard
query, and the main alerts are evaluated over made-up series (`promtool test rules`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "campaign-guard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                       "offset", "inf", "nan", "Inf", "NaN"})
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def registered() -> set[str]:
    """Every sample name bot/metrics.py's registry can expose (a labelled metric with no child yet included)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
                "summary": ("_sum", "_count", "")}
    return {family.name + suffix for family in REGISTRY.collect() for suffix in suffixes[family.type]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, keywords, labels or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", expr)         # string literals
    text = re.sub(r"\{[^}]*\}", "", text)                                        # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                                       # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():]
        if word in _KEYWORDS or rest.lstrip().startswith("(") or text[match.start() - 1:match.start()].isdigit():
            continue
        names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard query, with Grafana's `$__rate_interval` as a plain range."""
    return [(panel["title"], target["expr"].replace("$__rate_interval", "5m"))
            for panel in dashboard()["panels"] if panel["type"] != "row" for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_metric_names_are_found_in_promql_and_nothing_else() -> None:
    assert metric_names('sum by (vendor) (rate(campaign_guard_vendor_calls_total{result="429"}[10m])) '
                        '/ on (budget) group_left max(x_y > 0) > 0.05 unless time() - up offset 5m') == {
        "campaign_guard_vendor_calls_total", "x_y", "up"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))") == {"a_bucket"}


def test_the_registry_names_include_each_type_s_samples() -> None:
    names = registered()
    assert {"campaign_guard_events_total", "campaign_guard_decision_seconds_bucket", "campaign_guard_outbox_queued",
            "campaign_guard_poll_last_success_timestamp_seconds", "campaign_guard_budget_slots_total"} <= names
    assert "campaign_guard_events" not in names


def test_the_dashboard_imports_as_is_and_reads_only_the_bots_metrics() -> None:
    board = dashboard()
    assert board["uid"] == "campaign-guard" and board["title"] and isinstance(board["schemaVersion"], int)
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24 and position["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat") and panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip(), panel["title"]
    unknown = {(title, name) for title, expr in queries() for name in metric_names(expr)} - {
        (title, name) for title, expr in queries() for name in registered()}
    assert unknown == set()
    shown = {name for _, expr in queries() for name in metric_names(expr)}
    for needed in ("campaign_guard_events_total", "campaign_guard_decision_seconds_bucket",
                   "campaign_guard_vendor_calls_total", "campaign_guard_decisions_parked",
                   "campaign_guard_outbox_queued", "campaign_guard_poll_last_success_timestamp_seconds",
                   "campaign_guard_budget_slots_total", "campaign_guard_worker_heartbeat_timestamp_seconds"):
        assert needed in shown, needed


def test_the_alert_rules_have_prometheus_shape_and_read_only_the_bots_metrics() -> None:
    loaded = yaml.safe_load(ALERTS.read_text())
    assert set(loaded) == {"groups"} and loaded["groups"]
    for group in loaded["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"CampaignGuard[A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule["alert"]
        assert "for" not in rule or _DURATION.fullmatch(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert metric_names(rule["expr"]) <= registered(), (rule["alert"], metric_names(rule["expr"]) - registered())
        assert metric_names(rule["expr"]), rule["alert"]                # every alert reads a metric of the bot
    read = {name for rule in rules for name in metric_names(rule["expr"])}
    assert {"campaign_guard_worker_heartbeat_timestamp_seconds", "campaign_guard_events_total",
            "campaign_guard_poll_last_success_timestamp_seconds", "campaign_guard_poll_interval_seconds",
            "campaign_guard_vendor_calls_total", "campaign_guard_outbox_queued",
            "campaign_guard_decisions_parked"} <= read


def test_the_sample_prometheus_configuration_loads_the_alerts() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["campaign-guard-worker"]["dns_sd_configs"][0]["port"] == 9464       # BOT_METRICS_PORT in Compose
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    assert compose["services"]["worker"]["environment"]["BOT_METRICS_PORT"] == "9464"


def promtool(*args: str, cwd: Path | None = None) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_accepts_the_rules_the_configuration_and_every_dashboard_query(tmp_path: Path) -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", str(ALERTS))
    promtool("check", "config", PROMETHEUS.name, cwd=PROMETHEUS.parent)
    recorded = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"campaign_guard:panel_{n}", "expr": expr} for n, (_, expr) in enumerate(queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(recorded))
    promtool("check", "rules", str(path))


def expr_of(alert: str) -> str:
    return next(rule["expr"] for rule in alert_rules() if rule["alert"] == alert)


def series(name: str, labels: str, values: list[float | str]) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": " ".join(str(v) for v in values)}


@needs_promtool
def test_the_main_alerts_fire_on_what_they_mean_and_not_on_what_they_do_not(tmp_path: Path) -> None:
    """Over made-up series, one sample a minute for two hours: the poll stale alert ignores a worker that stopped
    polling when the duty moved (the newest poll of a route anywhere counts) but fires for a route nobody polled
    for over 3 intervals; a stuck worker is named, web processes (their heartbeat is 0) never are, and no worker
    scraped at all is no heartbeat; dead letters, 429s and the breaker."""
    minutes = range(121)
    polled_by_w2 = [900 * (m // 15) if m >= 15 else "_" for m in minutes]          # w2 polls every 15 min from 15
    beats = [60 * m if m <= 20 else 1200 for m in minutes]                           # w1's sweeper stuck at 20 min
    tests = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            series("campaign_guard_poll_interval_seconds", 'instance="w1"', [900] * 121),
            series("campaign_guard_poll_interval_seconds", 'instance="web"', [0] * 121),
            # w1 polled both routes at 0 and then lost the duty; w2 polls smartlead only
            series("campaign_guard_poll_last_success_timestamp_seconds",
                   'instance="w1",route="smartlead",kind="metrics"', [0] * 121),
            series("campaign_guard_poll_last_success_timestamp_seconds",
                   'instance="w1",route="leadterra",kind="metrics"', [0] * 121),
            series("campaign_guard_poll_last_success_timestamp_seconds",
                   'instance="w2",route="smartlead",kind="metrics"', polled_by_w2),
            series("campaign_guard_worker_heartbeat_timestamp_seconds", 'instance="w1"', beats),
            series("campaign_guard_worker_heartbeat_timestamp_seconds", 'instance="web"', [0] * 121),
            series("campaign_guard_events_total", 'instance="w1",outcome="dead"', [0] * 60 + [3] * 61),
            series("campaign_guard_vendor_calls_total", 'instance="w1",vendor="smartlead",operation="pause",result="ok"',
                   [10 * m for m in minutes]),
            series("campaign_guard_vendor_calls_total", 'instance="w1",vendor="smartlead",operation="pause",result="429"',
                   [0 if m < 60 else 2 * (m - 60) for m in minutes]),
            series("campaign_guard_decisions_parked", 'instance="w1"', [0] * 100 + [2] * 21),
        ],
        "promql_expr_test": [
            {"expr": expr_of("CampaignGuardPollStale"), "eval_time": "40m", "exp_samples": []},
            {"expr": expr_of("CampaignGuardPollStale"), "eval_time": "60m",
             "exp_samples": [{"labels": '{kind="metrics",route="leadterra"}', "value": 3600}]},
            {"expr": expr_of("CampaignGuardNoWorkerHeartbeat"), "eval_time": "20m", "exp_samples": []},
            {"expr": expr_of("CampaignGuardNoWorkerHeartbeat"), "eval_time": "30m",
             "exp_samples": [{"labels": "{}", "value": 600}]},
            {"expr": expr_of("CampaignGuardWorkerStuck"), "eval_time": "30m",
             "exp_samples": [{"labels": '{instance="w1"}', "value": 600}]},
            {"expr": expr_of("CampaignGuardDeadLettersGrowing"), "eval_time": "50m", "exp_samples": []},
            {"expr": expr_of("CampaignGuardVendor429s"), "eval_time": "50m", "exp_samples": []},
            {"expr": expr_of("CampaignGuardBreakerOpen"), "eval_time": "90m", "exp_samples": []},
            {"expr": expr_of("CampaignGuardBreakerOpen"), "eval_time": "110m",
             "exp_samples": [{"labels": "{}", "value": 2}]},
        ],
        "alert_rule_test": [
            {"eval_time": "50m", "alertname": "CampaignGuardPollStale", "exp_alerts": []},
            {"eval_time": "50m", "alertname": "CampaignGuardBreakerOpen", "exp_alerts": []},
        ],
    }]}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    promtool("test", "rules", str(path))
    # and the other side: the dead letters and the 429s fire once they happen
    firing = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": tests["tests"][0]["input_series"],
        "promql_expr_test": [
            {"expr": f"({expr_of('CampaignGuardDeadLettersGrowing')}) > bool 0", "eval_time": "70m",
             "exp_samples": [{"labels": "{}", "value": 1}]},
            {"expr": f"({expr_of('CampaignGuardVendor429s')}) > bool 0", "eval_time": "90m",
             "exp_samples": [{"labels": '{vendor="smartlead"}', "value": 1}]},
        ]}]}
    firing["tests"].append({                     # no worker scraped at all: the web processes' zero does not hide it
        "interval": "1m",
        "input_series": [series("campaign_guard_worker_heartbeat_timestamp_seconds", 'instance="web"', [0] * 11)],
        "promql_expr_test": [{"expr": expr_of("CampaignGuardNoWorkerHeartbeat"), "eval_time": "10m",
                              "exp_samples": [{"labels": "{}", "value": 600}]},
                             {"expr": expr_of("CampaignGuardWorkerStuck"), "eval_time": "10m", "exp_samples": []}]})
    path.write_text(yaml.safe_dump(firing, sort_keys=False))
    promtool("test", "rules", str(path))
