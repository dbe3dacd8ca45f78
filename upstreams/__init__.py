"""Everything about calling upstream HTTP JSON APIs: configuration, pooled clients, errors and concurrent fan-out.

This package never imports the web layer (DRF, adrf, django.http): `api/` builds on it, not the other way round.
"""

from .client import TransportFactory, UpstreamClient, aiohttp_transport, httpx_transport
from .config import ConfigError, UpstreamConfig, env_prefix, parse_upstreams
from .context import REQUEST_ID_HEADER, request_id
from .errors import (
    DeadlineExceeded,
    DependencyFailed,
    UpstreamBadContentType,
    UpstreamBadResponse,
    UpstreamBodyTooLarge,
    UpstreamConnectError,
    UpstreamError,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamPayloadInvalid,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .fanout import Call, Outcome, fan_out, validate_calls
from .registry import TRANSPORTS, UnknownUpstream, UpstreamRegistry, close_registry, get_registry, set_registry

__all__ = [
    "REQUEST_ID_HEADER",
    "TRANSPORTS",
    "Call",
    "ConfigError",
    "DeadlineExceeded",
    "DependencyFailed",
    "Outcome",
    "TransportFactory",
    "UnknownUpstream",
    "UpstreamBadContentType",
    "UpstreamBadResponse",
    "UpstreamBodyTooLarge",
    "UpstreamClient",
    "UpstreamConfig",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamInvalidJSON",
    "UpstreamNotFound",
    "UpstreamPayloadInvalid",
    "UpstreamProtocolError",
    "UpstreamRegistry",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "aiohttp_transport",
    "close_registry",
    "env_prefix",
    "fan_out",
    "get_registry",
    "httpx_transport",
    "parse_upstreams",
    "request_id",
    "set_registry",
    "validate_calls",
]
