"""Swagger UI (/api/docs/) and ReDoc (/api/redoc/) work in a real browser from the service alone; Swagger UI can call
the live API.

Headless Debian Chromium, driven by Playwright's sync API (a plain ``def`` test, so no event loop is running).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from playwright.sync_api import Locator, Page, Request, expect, sync_playwright

from tests.e2e.conftest import KeyedService

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
# Not network requests: inline images and in-page objects never leave the browser.
LOCAL_SCHEMES = {"data", "blob"}


def _operations() -> list[tuple[str, str, str, str]]:
    """(tag, operationId, method, path) of every operation in the committed schema."""
    schema = yaml.safe_load((REPO_ROOT / "openapi" / "schema.yaml").read_text())
    return [
        (operation["tags"][0], operation["operationId"], method, path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI must run the browser tests")
        pytest.skip("chromium is not installed")
    return path


@pytest.fixture
def page(chromium: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()  # closed with the browser
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _try_product_overview(page: Page) -> tuple[Locator, Locator]:
    """Open the product overview operation, switch on "Try it out" and fill in product 7: the operation's block and
    where its live response will show."""
    overview = page.locator("#operations-products-get_product_overview")
    overview.locator(".opblock-summary-control").click()
    overview.get_by_role("button", name="Try it out").click()
    overview.locator('tr[data-param-name="id"] input').fill("7")
    return overview, overview.locator(".live-responses-table .response")


def test_swagger_ui_lists_every_operation_and_tries_one_out_over_loopback_only(page: Page, live_service: str) -> None:
    requests: list[str] = []
    failed: list[str] = []

    def record_failure(request: Request) -> None:
        failed.append(f"{request.url}: {request.failure}")

    page.context.on("request", lambda request: requests.append(request.url))
    page.context.on("requestfailed", record_failure)

    page.goto(f"{live_service}/api/docs/")

    for tag, operation_id, method, path in _operations():
        block = page.locator(f"#operations-{tag}-{operation_id}")
        expect(block).to_be_visible()
        expect(block).to_have_class(re.compile(rf"\bopblock-{method}\b"))
        expect(block.locator(".opblock-summary-path")).to_have_attribute("data-path", path)

    overview, live_response = _try_product_overview(page)
    overview.get_by_role("button", name="Execute").click()

    expect(live_response.locator(".response-col_status")).to_have_text("200")
    expect(live_response.locator(".response-col_description")).to_contain_text("SKU-00007")

    # The recorder saw the assets, the schema and the call: an empty list would prove nothing.
    paths = {urlsplit(url).path for url in requests}
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in paths
    assert {"/api/schema/", "/api/products/7/"} <= paths
    off_host = [
        url for url in requests if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert off_host == [], f"requests left the loopback host (a CDN?): {off_host}"
    assert failed == [], f"requests failed: {failed}"


def test_redoc_renders_every_operation_from_the_service_alone(page: Page, live_service: str) -> None:
    requests: list[str] = []
    failed: list[str] = []
    page.context.on("request", lambda request: requests.append(request.url))
    page.context.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))

    page.goto(f"{live_service}/api/redoc/")

    # ReDoc renders a heading per operation (its anchor, then its summary) once it has loaded the schema.
    for tag, operation_id, _method, _path in _operations():
        heading = page.get_by_role("heading", name=f"tag/{tag}/operation/{operation_id} ")  # a substring
        expect(heading).to_be_visible()
    # The sidebar footer, whose logo ReDoc's bundle would fetch from Redocly's servers, has rendered too.
    expect(page.get_by_text("API docs by Redocly")).to_be_visible()
    page.wait_for_load_state("networkidle")

    paths = {urlsplit(url).path for url in requests}
    assert {"/api/redoc/", "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js", "/api/schema/"} <= paths
    off_host = [
        url for url in requests if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert off_host == [], f"requests left the loopback host (fonts, a CDN?): {off_host}"
    assert failed == [], f"requests failed: {failed}"


def test_swagger_ui_authorize_sends_the_key_to_an_api_that_requires_one(
    page: Page, keyed_sqlite_service: KeyedService
) -> None:
    base = keyed_sqlite_service.url
    page.goto(f"{base}/api/docs/")
    overview, live_response = _try_product_overview(page)

    # Without a key: the API's 401, shown by Swagger UI.
    overview.get_by_role("button", name="Execute").click()
    expect(live_response.locator(".response-col_status")).to_have_text("401")
    expect(live_response.locator(".response-col_description")).to_contain_text("not_authenticated")

    # Authorize with the key (the Bearer scheme), as a reader of the docs would.
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    dialog.locator('input[aria-label="auth-bearer-value"]').fill(keyed_sqlite_service.key)
    bearer = dialog.locator(".auth-container").filter(has_text="BearerAuth")
    bearer.get_by_role("button", name="Apply credentials").click()
    expect(bearer.locator("button", has_text="Logout")).to_be_visible()  # Swagger UI's sign of an applied key
    dialog.locator("button.close-modal").click()

    with page.expect_request(lambda request: urlsplit(request.url).path == "/api/products/7/") as sent:
        overview.get_by_role("button", name="Execute").click()
    assert sent.value.headers["authorization"] == f"Bearer {keyed_sqlite_service.key}"
    expect(live_response.locator(".response-col_status")).to_have_text("200")
    expect(live_response.locator(".response-col_description")).to_contain_text("SKU-00007")
