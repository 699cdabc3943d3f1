"""The proxy's /metrics and /readyz: requests by route and status, JWKS fetches and
the cache's age, and pool use, parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Callable

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.support import HTTP_TIMEOUT, Proxy


def scrape(proxy: Proxy) -> dict[tuple[str, frozenset], float]:
    text = requests.get(proxy.url + "/metrics", timeout=HTTP_TIMEOUT).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def find(metrics: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """The sum over samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in metrics.items() if n == name and wanted <= got)


def test_queries_fetches_and_pools_show(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    before = scrape(proxy)
    proxy.sql(user_token("metrics-user"), "SELECT 1")
    refused = proxy.post({"query": "SELECT 1"}, "not-a-jwt")
    assert refused.status_code == 400
    after = scrape(proxy)
    ok = {"route": "/sql", "method": "POST", "status": "200"}
    bad = {"route": "/sql", "method": "POST", "status": "400"}
    assert (
        find(after, "proxy_http_requests_total", **ok)
        == find(before, "proxy_http_requests_total", **ok) + 1
    )
    assert find(after, "proxy_http_requests_total", **bad) >= 1
    assert find(after, "proxy_jwks_fetches_total", outcome="ok") >= 1
    assert find(after, "proxy_jwks_keys") >= 1
    assert find(after, "proxy_jwks_age_seconds") >= 0
    assert find(after, "proxy_pool_connections", role="authenticated", state="open") >= 1


def test_healthz_and_readyz(proxy: Proxy) -> None:
    assert requests.get(proxy.url + "/healthz", timeout=HTTP_TIMEOUT).text == "ok\n"
    ready = requests.get(proxy.url + "/readyz", timeout=HTTP_TIMEOUT)
    assert ready.status_code == 200 and ready.text == "ready\n"
