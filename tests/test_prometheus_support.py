"""The rewriting the real-Prometheus test does to the deployed rules and config
(tests/support/prometheus.py, backbone/devtools/demo/observe.py): a minute of the rules
becomes a second, queue names follow the test's prefix, metric names and thresholds stay;
the rewritten rules still load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import compressed, deployed_rules, local_config, with_prefix


def _rule(rules: dict[str, object], name: str) -> dict[str, str]:
    return next(
        rule
        for group in rules["groups"]  # type: ignore[index]
        for rule in group["rules"]
        if rule.get("alert") == name
    )


def test_durations_shrink_sixty_times_and_queues_take_the_prefix() -> None:
    rules = compressed(deployed_rules("t1234"))
    spike = _rule(rules, "VdxRejectionReasonSpike")
    assert "[10s]" in spike["expr"]
    assert "[60s] offset 60s" in spike["expr"]
    assert "offset 1h" not in spike["expr"]
    assert spike["for"] == "5s"
    backlog = _rule(rules, "VdxInboxBacklogGrowing")
    assert backlog["for"] == "30s"
    assert 'queue=~"t1234[.]inbox[.].+"' in backlog["expr"]
    assert "> 100" in backlog["expr"]  # thresholds as deployed
    events = _rule(rules, "VdxAgencyEventsBackingUp")
    assert 'queue!="t1234.events.operators"' in events["expr"]
    expiring = _rule(rules, "VdxCertificateExpiring")
    assert "14 * 86400" in expiring["expr"]  # certificate arithmetic untouched
    assert "vdx_certificate_not_after_timestamp_seconds" in expiring["expr"]
    assert _rule(rules, "VdxUnroutable").get("for") is None
    oldest = _rule(rules, "VdxInboxOldestWaiting")
    assert oldest["expr"].rstrip().endswith(") > 360")  # an age's 6 * 3600 s, as a duration
    assert oldest["for"] == "15s"
    assert with_prefix('x{queue="vdx.router.inbound"} + vdx_in_flight', "p") == (
        'x{queue="p.router.inbound"} + vdx_in_flight'
    )


def test_only_a_threshold_on_an_age_shrinks_not_on_a_timestamp_a_latency_or_a_count() -> None:
    def rewritten(expr: str) -> str:
        rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": expr}]}]}
        return str(compressed(rules)["groups"][0]["rules"][0]["expr"])

    assert rewritten('max(x_age_seconds{q=~"a"}) >= 2 * 3600') == (
        'max(x_age_seconds{q=~"a"}) >= 120'
    )
    assert rewritten("x_wait_seconds > 30") == "x_wait_seconds > 1"  # at least a second
    kept = [
        "x_not_after_timestamp_seconds > 1700000000",
        "x_not_after_timestamp_seconds - time() < 14 * 86400",
        "histogram_quantile(0.99, sum by (le) (x_seconds_bucket)) > 2",
        "x_total > 3600",
    ]
    assert [rewritten(expr) for expr in kept] == kept


def test_the_local_config_keeps_every_job_and_needs_a_target_for_each(tmp_path: Path) -> None:
    targets = {
        job: [f"127.0.0.1:{9000 + n}"]
        for n, job in enumerate(
            ["prometheus", "vdx-router", "vdx-adapter", "rabbitmq", "rabbitmq-queues"]
        )
    }
    config = local_config(targets, tmp_path / "alerts.yml", "127.0.0.1:9093")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rabbitmq-queues"]["metrics_path"] == "/metrics/detailed"
    assert jobs["rabbitmq-queues"]["params"]["family"]  # as deployed
    assert config["global"]["scrape_interval"] == "1s"
    with pytest.raises(ValueError, match="rabbitmq-queues"):
        local_config({"vdx-router": ["x:1"]}, tmp_path / "alerts.yml", "127.0.0.1:9093")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
def test_the_compressed_rules_still_load(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(compressed(deployed_rules("t1234"))))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
