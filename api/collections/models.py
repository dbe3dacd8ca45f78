"""A client's product collections: a name and an ordered list of product ids, each with an optional note."""

from __future__ import annotations

from django.db import models

from api.clients.models import Client

__all__ = ["Collection", "CollectionItem"]


class Collection(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class CollectionItem(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    product_id = models.PositiveIntegerField()
    note = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["collection", "position"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "position"], name="collection_item_position"),
            models.UniqueConstraint(fields=["collection", "product_id"], name="collection_item_product"),
        ]

    def __str__(self) -> str:
        return f"{self.collection_id}[{self.position}]: {self.product_id}"
