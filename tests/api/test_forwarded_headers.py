"""End-user headers through the web layer: RequestContextMiddleware exposes the request's headers, and each
upstream receives only those its FORWARD_HEADERS lists."""

from __future__ import annotations

from typing import Any

import httpx
import respx

from tests.api.helpers import PRODUCT, REVIEW, STOCK
from tests.conftest import install_registry


async def test_allowlisted_headers_reach_only_the_upstreams_that_forward_them(api: Any, settings: Any) -> None:
    settings.UPSTREAMS = {
        name: {**values, **({"FORWARD_HEADERS": "Authorization,Accept-Language"} if name == "catalog" else {})}
        for name, values in settings.UPSTREAMS.items()
    }
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    catalog = router.get("http://catalog.upstream.test/products/7").respond(json=PRODUCT)
    inventory = router.get("http://inventory.upstream.test/stock/SKU-00007").respond(json=STOCK)
    router.get("http://reviews.upstream.test/products/7/summary").respond(json=REVIEW)
    install_registry(settings.UPSTREAMS, lambda config: httpx.MockTransport(router.async_handler))

    response = await api.get(
        "/api/products/7/",
        headers={"Authorization": "Bearer alice", "Accept-Language": "fr", "Cookie": "session=1", "X-Trace": "t"},
    )

    assert response.status_code == 200
    sent = catalog.calls.last.request.headers
    assert (sent["Authorization"], sent["Accept-Language"]) == ("Bearer alice", "fr")
    assert "cookie" not in sent
    assert "x-trace" not in sent
    not_forwarding = inventory.calls.last.request.headers
    assert "authorization" not in not_forwarding
    assert "accept-language" not in not_forwarding
