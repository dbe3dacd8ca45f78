"""The API keys in the OpenAPI schema: two security schemes (either one will do) on every operation that takes a
key, and the 401 and 403 problem responses that come with them.

The schema states the production default (keys required). Where a deployment allows anonymous calls
(`API_KEYS_REQUIRED=false`, the local default) a call without a key works too; generated clients still offer the
key to every operation, which is what a client of a production deployment needs.
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from ..problems import PROBLEM_CODES
from .authentication import API_KEY_HEADER

__all__ = ["ApiKeySchemes", "document_key_errors"]

BEARER, HEADER = "BearerAuth", "ApiKeyAuth"


class ApiKeySchemes(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular's hook
    target_class = "api.clients.authentication.ApiKeyAuthentication"
    name = [BEARER, HEADER]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{BEARER: []}, {HEADER: []}]  # alternatives: either header carries the key

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (`manage.py create_api_key <client>`) as `Authorization: Bearer <key>`.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": f"The same key in `{API_KEY_HEADER}`, for callers whose `Authorization` header "
                "carries the end user's own credentials.",
            },
        ]


_MEANINGS = {
    401: "No API key, or the key is malformed, unknown, revoked or expired (`WWW-Authenticate` has the challenge).",
    403: "The API key is valid, but its client may not call this operation.",
}
WWW_AUTHENTICATE = {
    "schema": {"type": "string"},
    "description": 'The challenge: `Bearer realm="tributary"`, with `error="invalid_token"` when a key was sent '
    "and refused.",
}


_PLAIN_PROBLEM: dict[str, Any] = {
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
}


def document_key_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: the 401 and 403 problem responses of every operation that takes a key."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not operation.get("security"):
                continue
            responses = operation["responses"]
            # Every operation made with api/schema.py `problems()` documents a 406 problem: the model for the 401 and
            # 403 (headers included). A view declared without it gets a plain problem response, not a 500 schema.
            model = responses.get("406", _PLAIN_PROBLEM)
            for status in (401, 403):
                response = copy.deepcopy(model)
                codes = ", ".join(f"`{code}`" for code, code_status in PROBLEM_CODES.items() if code_status == status)
                response["description"] = f"{_MEANINGS[status]} Codes: {codes}."
                if status == 401:
                    response["headers"] = {"WWW-Authenticate": WWW_AUTHENTICATE, **response.get("headers", {})}
                responses[str(status)] = response
            operation["responses"] = dict(sorted(responses.items()))
    return result
