"""The todo app's /metrics and /readyz (on the live in-process stack)."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.app.live import HTTP_TIMEOUT, Stack


def requests_counted(stack: Stack, route: str, status: str) -> float:
    text = requests.get(f"{stack.app_url}/metrics", timeout=HTTP_TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "app_http_requests_total"
        and sample.labels.get("route") == route
        and sample.labels.get("status") == status
    )


def test_pages_are_counted_and_the_app_is_ready(stack: Stack) -> None:
    before = requests_counted(stack, "/", "200")
    for _ in range(2):
        page = requests.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT, allow_redirects=False)
        assert page.status_code == 200  # the signed-out welcome page
    assert requests_counted(stack, "/", "200") == before + 2
    ready = requests.get(f"{stack.app_url}/readyz", timeout=HTTP_TIMEOUT)
    assert ready.status_code == 200 and ready.text == "ready\n"
