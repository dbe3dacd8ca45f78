"""Vendored from adrf (https://github.com/em1208/adrf, tests/test_authentication.py at d63848a, MIT licence:
see LICENSE and __init__.py).
Changed: the view class is ours (`compat.APIView`); the user is a plain
object (no `django.contrib.auth` here, no faker); the `@api_view` function-view tests are left out (adrf's own
view class, see __init__.py)."""

# ruff: noqa: PT009 - upstream's code, kept as upstream wrote it (unittest asserts)

from django.http import HttpResponse
from django.test import TestCase, override_settings
from rest_framework import permissions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIRequestFactory

from tests.framework.adrf.compat import APIView


class FakedUser:
    is_authenticated = True


faked_user = FakedUser()


factory = APIRequestFactory()


class AsyncAuthentication(BaseAuthentication):
    keyword = "Bearer"

    async def authenticate(self, request):
        auth = request.headers.get("Authorization")
        if not auth:
            return None

        if not auth.startswith(self.keyword):
            return None

        token = auth[len(self.keyword) :].strip()

        if token != "admitme":
            raise AuthenticationFailed("Invalid token")

        return faked_user, None

    def authenticate_header(self, request):
        return self.keyword


class MockView(APIView):
    permission_classes = (permissions.IsAuthenticated,)
    authentication_classes = (AsyncAuthentication,)

    async def get(self, request):
        return HttpResponse({"a": 1, "b": 2, "c": 3})


@override_settings(ROOT_URLCONF=__name__)
class TestAsyncAuthentication(TestCase):
    async def test_admit_customtoken_class_view(self):
        auth = "Bearer admitme"
        request = factory.get("/view/", HTTP_AUTHORIZATION=auth)
        response = await MockView.as_view()(request)
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual(request.user, faked_user)

    async def test_reject_customtoken_class_view(self):
        auth = "Bearer expired"
        request = factory.get("/view/", HTTP_AUTHORIZATION=auth)
        response = await MockView.as_view()(request)
        self.assertEqual(response.status_code, status.HTTP_401_UNAUTHORIZED)
