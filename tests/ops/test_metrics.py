"""What the dashboard and the alerts read: process and build metrics, the last
reload, the window's capacity, bind transitions, HTTP requests by route template;
and the separate ops listener that keeps them off the customers' port."""

from __future__ import annotations

import http.client
import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from smppd.api.ops import route_template
from tests.conftest import call, wait_for


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = _get(port, "/metrics")
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize(("path", "template"), [
    ("/v1/messages", "/v1/messages"), ("/v1/messages/", "/v1/messages"),
    ("/v1/messages/01a228e96e6f0000489ef9537c357044", "/v1/messages/{id}"),
    ("/v1/jobs/abc/pause", "/v1/jobs/{id}/pause"), ("/v1/jobs/abc/explode", "/v1/jobs/{id}/{id}"),
    ("/v1/reports/r1/file", "/v1/reports/{id}/file"), ("/metrics", "/metrics"),
    ("/readyz", "/readyz"), ("/", "other"), ("/wp-login.php", "other"),
    ("/v1/nonsense", "other"), ("/v1/messages/a/b/c/d", "other"), ("/portal/login", "/portal/*")])
def test_route_templates(path: str, template: str) -> None:
    assert route_template(path) == template


@given(st.text(string.ascii_letters + string.digits + "/-_.", max_size=60))
def test_route_templates_stay_within_a_fixed_vocabulary(path: str) -> None:
    template = route_template("/" + path)
    words = {"v1", "{id}", "other", "*", "portal", "ops", "metrics", "healthz", "readyz",
             "messages", "jobs", "account", "statuses", "reports", "report-schedules",
             "campaigns", "inbound", "contacts", "groups", "discount-codes", "polls",
             "callbacks", "pause", "resume", "stop", "file", "numbers", "deliveries", "stats",
             "settings", ""}
    assert set(template.split("/")) <= words, template


def test_operations_metrics_are_exported(start_daemon) -> None:  # type: ignore[no-untyped-def]
    running = start_daemon()
    port = running.daemon.http_port
    client = running.client
    assert client.send()[0] == 201
    assert client.request("GET", "/v1/messages/" + "0" * 32)[0] == 404
    assert client.request("GET", "/v1/account", token="wrong-token-wrong-token")[0] == 401
    samples = scrape(port)
    assert value(samples, "process_cpu_seconds_total") is not None
    assert value(samples, "process_resident_memory_bytes") > 0
    assert any(name == "python_info" for name, _ in samples)
    version = next(dict(labels)["version"] for name, labels in samples
                   if name == "smppd_build_info")
    assert version and value(samples, "smppd_build_info", version=version) == 1
    assert value(samples, "smppd_config_last_reload_successful") == 1
    assert value(samples, "smppd_config_last_reload_success_timestamp_seconds") > 1.7e9
    assert value(samples, "smppd_window_capacity", smsc="carrier-a") == 20  # window 20, 1 bind
    assert value(samples, "smppd_window_in_use", smsc="carrier-a") is not None
    assert value(samples, "smppd_bind_transitions_total", smsc="carrier-a",
                 direction="up") == 1
    assert value(samples, "smppd_bind_transitions_total", smsc="carrier-a",
                 direction="down") == 0
    requests = {labels: count for (name, labels), count in samples.items()
                if name == "smppd_http_requests_total"}
    assert requests[(("route", "/v1/messages"), ("status_class", "2xx"))] == 1
    assert requests[(("route", "/v1/messages/{id}"), ("status_class", "4xx"))] == 1
    assert requests[(("route", "/v1/account"), ("status_class", "4xx"))] == 1
    assert not any("0000000" in v for labels in requests for _, v in labels)


def test_bind_transitions_count_a_drop_and_the_rebind(start_daemon, smsc) -> None:  # type: ignore[no-untyped-def]
    running = start_daemon()
    port = running.daemon.http_port
    call(smsc.drop_all)
    wait_for(lambda: running.daemon.connectors["carrier-a"].transitions["up"] == 2,
             what="re-bound after the drop")
    samples = scrape(port)
    assert value(samples, "smppd_bind_transitions_total", smsc="carrier-a",
                 direction="down") == 1
    assert value(samples, "smppd_bind_transitions_total", smsc="carrier-a", direction="up") == 2


def test_reload_outcome_gauge(start_daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    running = start_daemon()
    metrics = running.daemon.metrics
    call(metrics.reloaded, False)
    samples = scrape(running.daemon.http_port)
    assert value(samples, "smppd_config_last_reload_successful") == 0
    assert value(samples, "smppd_config_reloads_total", result="failure") == 1
    call(metrics.reloaded, True)
    samples = scrape(running.daemon.http_port)
    assert value(samples, "smppd_config_last_reload_successful") == 1
    assert value(samples, "smppd_config_reloads_total", result="success") == 1


def test_ops_listener_keeps_operators_paths_off_the_customer_port(start_daemon) -> None:  # type: ignore[no-untyped-def]
    running = start_daemon(http={"listen": "127.0.0.1:0", "ops_listen": "127.0.0.1:0"})
    daemon = running.daemon
    ops_port = daemon.ops_port.getHost().port
    api_port = daemon.http_port
    assert ops_port != api_port
    for path in ("/metrics", "/healthz", "/readyz"):
        status, body = _get(api_port, path)
        assert status == 404 and json.loads(body)["error"], (path, body)
        assert _get(ops_port, path)[0] == 200, path
    status, body = _get(ops_port, "/v1/account")
    assert status == 404 and "ops listener" in json.loads(body)["error"]
    assert running.client.request("GET", "/v1/account")[0] == 200  # customers unaffected
    samples = scrape(ops_port)
    assert value(samples, "smppd_http_requests_total", route="/metrics",
                 status_class="4xx") == 1  # the customer port's 404
    assert value(samples, "smppd_http_requests_total", route="/readyz",
                 status_class="2xx") == 1


def test_ops_listen_is_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from smppd import config
    from tests.support.running import settings_dict

    data = settings_dict("sqlite:///x.db", 2775, http={"listen": "127.0.0.1:8080",
                                                       "ops_listen": "127.0.0.1:8080"})
    with pytest.raises(config.ConfigError, match=r"http\.ops_listen: must differ"):
        config.parse(data, "t.yaml")
    data["http"]["ops_listen"] = "nowhere"
    with pytest.raises(config.ConfigError, match=r"http\.ops_listen: expected HOST:PORT"):
        config.parse(data, "t.yaml")
    data["http"]["ops_listen"] = "127.0.0.1:9100"
    assert config.parse(data, "t.yaml").ops_listen == ("127.0.0.1", 9100)
