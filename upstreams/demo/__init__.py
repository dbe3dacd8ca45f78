"""Built-in demo upstreams: deterministic, simulated HTTP JSON services with injectable faults.

``DemoApp`` is a pure ASGI application serving the ``slow``, ``catalog``, ``inventory``, ``reviews`` and
``fx`` services; ``DemoOptions`` sets its latency and faults, and ``parse_faults`` reads a fault spec such as
``"reviews=timeout,inventory=500"`` (``FAULT_KINDS`` names the kinds; HTTP statuses 400-599 work as well).
``demo_payload`` is what a service answers, for documentation examples.
"""

from .app import FAULT_KINDS, DemoApp, DemoOptions, demo_payload, parse_faults

__all__ = ["FAULT_KINDS", "DemoApp", "DemoOptions", "demo_payload", "parse_faults"]
