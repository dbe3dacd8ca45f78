"""The admin site (/admin/): a superuser makes a key (shown once) and revokes keys; the session, authentication and
message middleware it needs run for its pages only, never around the API's requests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as BrowserClient

from api.clients import keys
from api.clients.keys import create_key, digest, is_well_formed
from api.clients.models import ApiKey, Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser() -> BrowserClient:
    user = User.objects.create_superuser("ops", "ops@example.com", "correct horse battery staple")
    browser = BrowserClient()
    browser.force_login(user)
    return browser


def test_the_login_page_is_served_with_a_session(client: BrowserClient) -> None:
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content
    assert "csrftoken" in response.cookies


def test_the_admin_refuses_a_login_without_a_csrf_token() -> None:
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    browser = BrowserClient(enforce_csrf_checks=True)

    response = browser.post("/admin/login/", {"username": "ops", "password": "pw"})

    assert response.status_code == 403


def test_the_api_gets_no_session_or_cookie(client: BrowserClient) -> None:
    response = client.get("/api/upstreams/")

    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.headers.get("Vary", "")


def test_a_key_made_in_the_admin_is_shown_once_and_stored_as_a_digest(admin_browser: BrowserClient) -> None:
    client = Client.objects.create(name="partner")

    response = admin_browser.post(
        "/admin/api/apikey/add/", {"client": client.pk, "name": "from-admin", "expires": ""}, follow=True
    )

    assert response.status_code == 200
    shown = re.findall(r"tb_[0-9A-Za-z]{8}_[0-9A-Za-z]{46}", response.content.decode())
    assert len(set(shown)) == 1
    key = shown[0]
    assert is_well_formed(key)
    record = ApiKey.objects.get(client=client)
    assert (record.name, record.digest, record.prefix) == ("from-admin", digest(key), key[3:11])
    # Not on the key's own page afterwards.
    assert key not in admin_browser.get(f"/admin/api/apikey/{record.pk}/change/").content.decode()


def test_the_revoke_action_revokes_and_empties_this_workers_cache(admin_browser: BrowserClient) -> None:
    client = Client.objects.create(name="partner")
    made = [create_key(client).record for _ in range(2)]
    cache = keys.key_cache()
    cache._store("some-digest", keys.Verdict(None, "unknown"), 60)
    assert len(cache) == 1

    response = admin_browser.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [made[0].pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert [k.revoked is not None for k in ApiKey.objects.order_by("pk")] == [True, False]
    assert len(cache) == 0


def test_the_admins_static_files_are_served(client: BrowserClient, settings: Any) -> None:
    response = client.get("/static/admin/css/base.css")

    assert response.status_code == 200
    assert b"".join(response.streaming_content)  # read (and so closed): WhiteNoise streams the file
    response.close()
