"""The schema's example responses are real: each is what the service answers to the example's request when its
upstreams are the demo ones (so Swagger UI shows a real product, not random values, and the examples cannot rot)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from api import aggregates
from api.aggregation import Aggregate, published

EXAMPLE_HOST = "https://tributary.example"


def with_example() -> list[type[Aggregate]]:
    assert aggregates  # imported for its declarations
    return [aggregate for aggregate in published() if aggregate.example is not None]


def test_every_built_in_aggregate_has_an_example() -> None:
    assert {a.__name__ for a in with_example()} == {a.__name__ for a in published()}


@pytest.mark.parametrize("aggregate", with_example(), ids=lambda a: a.__name__)
async def test_the_example_is_what_the_service_answers_on_the_demo(
    aggregate: type[Aggregate], api: Any, demo: Any
) -> None:
    demo()
    route, args = aggregate.parsed_route(), dict(aggregate.example or {})
    url = f"/api/{route.prefix}/"
    if route.param is not None:
        url += f"{args.pop(route.param)}/" + (f"{route.action}/" if route.action else "")
    response = await api.get(url + ("?" + urlencode(args) if args else ""))

    assert response.status_code == 200, response.content
    body = response.json()
    for link in ("next", "previous"):  # absolute links: the example's host is a placeholder
        if isinstance(body.get(link), str):
            body[link] = body[link].replace("http://testserver", EXAMPLE_HOST)
    assert body == aggregate.demo_example()
