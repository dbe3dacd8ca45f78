"""The web layer: adrf viewsets, DRF serializers, problem responses and the OpenAPI schema, over `upstreams/`."""
