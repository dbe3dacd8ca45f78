"""Run Django's own test modules with `TributaryASGIHandler` in place of Django's `ASGIHandler`.

    python tests/framework/run_django_suite.py <django-sdist>/tests asgi handlers

Django's `tests/runtests.py` is run as is, after `django.core.handlers.asgi.ASGIHandler` and
`django.core.asgi.get_asgi_application` are swapped for ours (the test modules import them by those names, so they
construct our handler). Tests listed in `DOES_NOT_APPLY` are reported as skipped, with the reason; every other test
must pass.
"""

from __future__ import annotations

import os
import runpy
import sys
import unittest
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]

# Each upstream test that does not apply to our handler, and why.
THREAD_HOP = (
    "asserts that Django ran the request_started/request_finished signals (or response.close()) in another thread "
    "through sync_to_async; ours runs sync receivers inline on the event loop, on purpose (config/handler.py, "
    "tests/test_thread_hops.py). The behaviour under test besides the thread (cancellation, the signal being sent, "
    "the response) is asserted by the rest of the test, and by the other tests in the module."
)
DOES_NOT_APPLY: dict[str, str] = {
    "asgi.tests.ASGITest.test_asyncio_cancel_error": THREAD_HOP,
    "asgi.tests.ASGITest.test_asyncio_streaming_cancel_error": THREAD_HOP,
    "asgi.tests.ASGITest.test_request_too_big_request_error": THREAD_HOP,
}


def _swap_in_our_handler() -> None:
    sys.path.insert(0, str(PROJECT))
    import django
    import django.core.asgi
    import django.core.handlers.asgi

    from config.handler import TributaryASGIHandler

    def get_asgi_application() -> TributaryASGIHandler:
        django.setup(set_prefix=False)
        return TributaryASGIHandler()

    django.core.handlers.asgi.ASGIHandler = TributaryASGIHandler  # type: ignore[misc]
    django.core.asgi.get_asgi_application = get_asgi_application  # type: ignore[assignment]


def _skip_what_does_not_apply() -> None:
    from django.test.runner import DiscoverRunner
    from django.test.utils import iter_test_cases

    build_suite = DiscoverRunner.build_suite

    def build_suite_without(self: DiscoverRunner, *args: Any, **kwargs: Any) -> Any:
        suite = build_suite(self, *args, **kwargs)
        for test in iter_test_cases(suite):
            reason = DOES_NOT_APPLY.get(test.id())
            if reason is not None:
                setattr(test, test._testMethodName, unittest.skip(f"does not apply: {reason}")(lambda: None))
        return suite

    DiscoverRunner.build_suite = build_suite_without  # type: ignore[method-assign]


def main() -> None:
    tests_dir, *labels = sys.argv[1:]
    _swap_in_our_handler()
    _skip_what_does_not_apply()
    os.chdir(tests_dir)
    sys.path.insert(0, tests_dir)
    sys.argv = ["runtests.py", *labels, "--parallel", "1", "--verbosity", "2"]
    runpy.run_path("runtests.py", run_name="__main__")


if __name__ == "__main__":
    main()
