"""A client generated from the committed schema by openapi-python-client works against the running service.

The schema is the contract clients build on, so this generates one the way a consumer would, imports it, and
checks that real responses (a success, a problem document, a page) parse into its typed models.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.conftest import KeyedService

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "openapi" / "schema.yaml"
PACKAGE = "tributary_e2e_client"
# The generator's default post-hooks run ruff, which is a dev tool and need not be installed; formatting the
# generated code is irrelevant here, and without hooks any remaining warning is about the schema itself.
GENERATOR_CONFIG = "post_hooks: []\n"


@dataclass(frozen=True)
class GeneratedPackage:
    """The generated client package, importable while the fixture is active."""

    name: str

    def module(self, dotted: str) -> ModuleType:
        return importlib.import_module(f"{self.name}.{dotted}")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeneratedPackage]:
    workdir = tmp_path_factory.mktemp("generated_client")
    config = workdir / "config.yaml"
    config.write_text(GENERATOR_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            *("--path", str(SCHEMA)),
            *("--output-path", str(workdir / PACKAGE)),
            *("--meta", "none"),
            *("--config", str(config)),
            "--fail-on-warning",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"openapi-python-client failed:\n{output}"
    assert "warning" not in output.lower(), f"openapi-python-client warned:\n{output}"

    sys.path.insert(0, str(workdir))
    try:
        yield GeneratedPackage(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def client(generated: GeneratedPackage, live_service: str) -> Iterator[Any]:
    # The plain Client: the live service allows anonymous calls (local settings); the keyed one is tested below.
    with generated.module("client").Client(
        base_url=live_service, raise_on_unexpected_status=True, timeout=10.0
    ) as api_client:
        yield api_client


def test_product_overview_parses_into_generated_models(generated: GeneratedPackage, client: Any) -> None:
    operation = generated.module("api.products.get_product_overview")
    models = generated.module("models")

    response = operation.sync_detailed(7, client=client, currency="GBP")

    assert response.status_code == HTTPStatus.OK
    overview = response.parsed
    assert isinstance(overview, models.ProductOverview)
    assert overview.id == 7
    assert overview.sku == "SKU-00007"
    assert isinstance(overview.price, models.Money)
    assert overview.price.amount
    assert len(overview.price.currency) == 3
    assert isinstance(overview.converted_price, models.ConvertedPrice)
    assert overview.converted_price.currency == "GBP"
    assert isinstance(overview.inventory, models.Stock)
    assert isinstance(overview.reviews, models.Reviews)
    assert isinstance(overview.missing, list)
    assert overview.missing == []


def test_unknown_product_parses_into_generated_problem(generated: GeneratedPackage, client: Any) -> None:
    operation = generated.module("api.products.get_product_overview")
    models = generated.module("models")

    response = operation.sync_detailed(99999, client=client)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.parsed
    assert isinstance(problem, models.Problem)
    assert problem.code is models.ProblemCode.NOT_FOUND  # the published codes are an enum clients can switch on
    assert problem.status == 404
    assert problem.type_ == "urn:tributary:problem:not_found"
    assert problem.request_id == response.headers["x-request-id"]


def test_product_list_page_parses_into_generated_models(generated: GeneratedPackage, client: Any) -> None:
    operation = generated.module("api.products.list_products")
    models = generated.module("models")

    response = operation.sync_detailed(client=client, page_size=2)

    assert response.status_code == HTTPStatus.OK
    page = response.parsed
    assert isinstance(page, models.ProductPage)
    assert page.count == 120
    assert [product.id for product in page.results] == [1, 2]
    assert all(isinstance(product, models.ProductListItem) for product in page.results)
    assert page.results[0].inventory.available == 30  # enriched from the demo inventory (SKU-00001)
    assert page.results[0].average_rating == 2.7  # and from the demo reviews
    assert page.missing == []
    assert page.previous is None
    assert isinstance(page.next_, str)


def test_generated_calls_take_the_authenticated_client(generated: GeneratedPackage) -> None:
    # The schema's security schemes make every API call take the generated AuthenticatedClient (Bearer token).
    import inspect

    overview = generated.module("api.products.get_product_overview")
    annotation = str(inspect.signature(overview.sync_detailed).parameters["client"].annotation)

    assert f"{generated.name}.client.AuthenticatedClient" in annotation


def test_authenticated_client_against_a_service_that_requires_keys(
    generated: GeneratedPackage, keyed_postgres_service: KeyedService
) -> None:
    """PostgreSQL, keys required, the key made by `create_api_key`: what a production client does."""
    client_module = generated.module("client")
    overview = generated.module("api.products.get_product_overview")
    problem = generated.module("models.problem")
    url = keyed_postgres_service.url

    with client_module.AuthenticatedClient(base_url=url, token=keyed_postgres_service.key, timeout=10.0) as client:
        response = overview.sync_detailed(7, client=client)
        assert response.status_code == HTTPStatus.OK, response.content
        assert response.parsed.sku == "SKU-00007"

    with client_module.AuthenticatedClient(base_url=url, token="tb_wrong", timeout=10.0) as client:
        refused = overview.sync_detailed(7, client=client)
        assert refused.status_code == HTTPStatus.UNAUTHORIZED
        assert isinstance(refused.parsed, problem.Problem)
        assert refused.parsed.code.value == "authentication_failed"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="tributary", error="invalid_token"'

    # Revoked by command (another process): refused once this worker's cache entry expires.
    keyed_postgres_service.manage("revoke_api_key", keyed_postgres_service.key)
    with client_module.AuthenticatedClient(base_url=url, token=keyed_postgres_service.key, timeout=10.0) as client:
        deadline = time.monotonic() + 30
        while (status := overview.sync_detailed(7, client=client).status_code) == HTTPStatus.OK:
            assert time.monotonic() < deadline, "the revoked key still works after 30 s"
            time.sleep(0.2)
        assert status == HTTPStatus.UNAUTHORIZED


def test_generated_client_creates_reads_and_deletes_a_collection(
    generated: GeneratedPackage, keyed_postgres_service: KeyedService
) -> None:
    """Our own data through the generated client, on PostgreSQL (the read is native async there): created (checked
    against the catalog), read back composed with the catalog, stock and ratings, deleted. With a key of its own
    client: another test revokes the service's key."""
    service = keyed_postgres_service
    key = service.manage("create_api_key", "e2e-collections", "--name", "collections").strip()
    client_module = generated.module("client")
    create = generated.module("api.collections.create_collection")
    retrieve = generated.module("api.collections.get_collection")
    delete = generated.module("api.collections.delete_collection")
    models = generated.module("models")
    problem = generated.module("models.problem")
    body = models.CollectionWriteRequest(
        name="Wishlist",
        items=[models.ItemWriteRequest(product_id=8, note="blue"), models.ItemWriteRequest(product_id=7)],
    )

    with client_module.AuthenticatedClient(base_url=service.url, token=key) as client:
        created = create.sync_detailed(client=client, body=body)
        assert created.status_code == HTTPStatus.CREATED, created.content
        collection_id = created.parsed.id

        read = retrieve.sync_detailed(collection_id, client=client)
        assert read.status_code == HTTPStatus.OK, read.content
        assert [item.product_id for item in read.parsed.items] == [8, 7]
        assert read.parsed.items[0].note == "blue"
        assert read.parsed.items[0].product.sku == "SKU-00008"
        assert read.parsed.items[0].inventory.available >= 0
        assert read.parsed.missing == []

        assert delete.sync_detailed(collection_id, client=client).status_code == HTTPStatus.NO_CONTENT
        gone = retrieve.sync_detailed(collection_id, client=client)
        assert gone.status_code == HTTPStatus.NOT_FOUND
        assert isinstance(gone.parsed, problem.Problem)
