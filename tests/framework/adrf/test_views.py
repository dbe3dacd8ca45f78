"""Vendored from adrf (https://github.com/em1208/adrf, tests/test_views.py at d63848a, MIT licence:
see LICENSE and __init__.py).
Changed: the view class is ours (`compat.APIView`), with DRF's default parsers (our settings
take JSON only); only the async class-based view tests are kept, without `test_logged_in_get_succeeds` (see
__init__.py)."""

import copy

from asgiref.sync import async_to_sync
from django.test import TestCase
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from tests.framework.adrf.compat import APIView

factory = APIRequestFactory()


JSON_ERROR = "JSON parse error - Expecting value:"


def sanitise_json_error(error_dict):
    """
    Exact contents of JSON error messages depend on the installed version
    of json.
    """
    ret = copy.copy(error_dict)
    chop = len(JSON_ERROR)
    ret["detail"] = ret["detail"][:chop]
    return ret


class BasicAsyncView(APIView):
    parser_classes = (JSONParser, FormParser, MultiPartParser)  # DRF's defaults; our settings take JSON only

    async def get(self, request, *args, **kwargs):
        return Response({"method": "GET"})

    async def post(self, request, *args, **kwargs):
        return Response({"method": "POST", "data": request.data})

    async def put(self, request, *args, **kwargs):
        return Response({"method": "PUT", "data": request.data})

    async def patch(self, request, *args, **kwargs):
        return Response({"method": "PATCH", "data": request.data})


class ClassBasedAsyncViewIntegrationTests(TestCase):
    def setUp(self):
        self.view = BasicAsyncView.as_view()

    def test_get_succeeds(self):
        request = factory.get("/")
        response = async_to_sync(self.view)(request)
        assert response.status_code == status.HTTP_200_OK
        assert response.data == {"method": "GET"}

    def test_post_succeeds(self):
        request = factory.post("/", {"test": "foo"})
        response = async_to_sync(self.view)(request)
        expected = {"method": "POST", "data": {"test": ["foo"]}}
        assert response.status_code == status.HTTP_200_OK
        assert response.data == expected

    def test_patch_succeeds(self):
        request = factory.patch("/", {"test": "foo"})
        response = async_to_sync(self.view)(request)
        expected = {"method": "PATCH", "data": {"test": ["foo"]}}
        assert response.status_code == status.HTTP_200_OK
        assert response.data == expected

    def test_put_succeeds(self):
        request = factory.put("/", {"test": "foo"})
        response = async_to_sync(self.view)(request)
        expected = {"method": "PUT", "data": {"test": ["foo"]}}
        assert response.status_code == status.HTTP_200_OK
        assert response.data == expected

    def test_options_succeeds(self):
        request = factory.options("/")
        response = async_to_sync(self.view)(request)
        assert response.status_code == status.HTTP_200_OK

    def test_400_parse_error(self):
        request = factory.post("/", "f00bar", content_type="application/json")
        response = async_to_sync(self.view)(request)
        expected = {"detail": JSON_ERROR}
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert sanitise_json_error(response.data) == expected
