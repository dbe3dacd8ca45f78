"""Vendored from adrf (https://github.com/em1208/adrf, tests/test_throttling.py at d63848a, MIT licence:
see LICENSE and __init__.py).
Changed: the view class is ours (`compat.APIView`), nothing else."""

# ruff: noqa: PT009 - upstream's code, kept as upstream wrote it (unittest asserts)

from django.http import HttpResponse
from django.test import TestCase, override_settings
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import BaseThrottle

from tests.framework.adrf.compat import APIView

factory = APIRequestFactory()


class AsyncThrottle(BaseThrottle):
    async def allow_request(self, request, view):
        if not hasattr(self.__class__, "called"):
            self.__class__.called = True
            return True

        return False

    def wait(self):
        return 3


class MockView(APIView):
    throttle_classes = [AsyncThrottle]

    async def get(self, request):
        return HttpResponse()


@override_settings(ROOT_URLCONF=__name__)
class TestAsyncThrottling(TestCase):
    async def test_throttle(self):
        """
        Ensure throttling is applied correctly.
        """
        request = factory.get("/")

        self.assertFalse(hasattr(MockView.throttle_classes[0], "called"))

        response = await MockView.as_view()(request)
        self.assertFalse("Retry-After" in response)

        self.assertTrue(MockView.throttle_classes[0].called)

        response = await MockView.as_view()(request)
        self.assertTrue("Retry-After" in response)
        self.assertEqual(response["Retry-After"], "3")
