"""The README's "How to add an aggregate" recipe, verbatim (tests/api/test_recipe.py serves it against the demo)."""

from typing import Any
from urllib.parse import quote

from rest_framework import serializers

from api import serializers as s
from api.aggregation import Aggregate, Fetch, Parts


class Forecast(serializers.Serializer):
    warehouse = serializers.CharField()
    temperature_c = serializers.FloatField()
    conditions = serializers.CharField()


class ProductWeather(Aggregate):
    """The weather where a product ships from.

    The forecast at the warehouse that stocks the product: catalog gives its SKU, inventory its warehouse.
    """

    route = "products/{id:int}/weather"
    response = Forecast
    tag = "products"

    product = Fetch(
        upstream="catalog", path="products/{id}", serializer=s.CatalogProduct, not_found="There is no product {id}."
    )
    stock = Fetch(
        upstream="inventory",
        path=lambda i: "stock/" + quote(i.results["product"]["sku"], safe=""),
        needs=("product",),
        serializer=s.InventoryStock,
    )
    forecast = Fetch(
        upstream="weather",
        path=lambda i: "forecast/" + quote(i.results["stock"]["warehouse"], safe=""),
        needs=("stock",),
        serializer=Forecast,
    )

    def shape(self, parts: Parts) -> Any:
        return parts.get("forecast")
