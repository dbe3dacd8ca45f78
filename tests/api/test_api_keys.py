"""API keys, as a client meets them: Bearer or X-API-Key, 401 with a challenge for every way a key can be wrong, 403
outside the client's scopes, anonymous calls only where allowed; and as the service keeps them: one database query
per key per TTL per worker (shared by concurrent misses), none for a malformed key, revocation at once in this
worker and within the TTL elsewhere, last-used times written in batches."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from django.core.management import CommandError, call_command
from django.utils import timezone

from api.clients import keys
from api.clients.keys import create_key, is_well_formed, key_cache, last_used
from api.clients.models import ApiKey, Client
from config import asgi
from tests.api.helpers import PRODUCT, REVIEW, STOCK, assert_problem
from tests.conftest import install_registry
from tests.test_thread_hops import HopCounter, hops

pytestmark = pytest.mark.django_db(transaction=True)

assert hops  # a fixture, imported: counts sync_to_async and executor hops

PATH = "/api/upstreams/"  # calls no upstream: what is measured here is the key


@pytest.fixture
def required(settings: Any) -> None:
    settings.API_KEYS_REQUIRED = True


async def new_key(client_name: str = "mobile", **client_fields: Any) -> tuple[str, ApiKey]:
    def make() -> tuple[str, ApiKey]:
        client, _ = Client.objects.get_or_create(name=client_name, defaults=client_fields)
        new = create_key(client, name="test")
        return new.key, new.record

    from asgiref.sync import sync_to_async

    return await sync_to_async(make)()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- The key's shape -----------------------------------------------------------------------------------------------


async def test_a_new_key_is_well_formed_and_only_its_digest_is_stored() -> None:
    key, record = await new_key()

    assert key.startswith(f"tb_{record.prefix}_")
    assert len(key) == 3 + 8 + 1 + 46
    assert is_well_formed(key)
    assert record.digest == keys.digest(key) != key
    assert key not in str([row async for row in ApiKey.objects.filter(pk=record.pk).values()])


@pytest.mark.parametrize(
    "damage",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # checksum
        lambda k: k[:20] + ("x" if k[20] != "x" else "y") + k[21:],  # secret
        lambda k: k[:-1],  # truncated
        lambda k: "tb-" + k[3:],
        lambda k: k + "0",
    ],
)
async def test_a_damaged_key_is_not_well_formed(damage: Any) -> None:
    key, _ = await new_key()

    assert not is_well_formed(damage(key))


# --- Refusals ------------------------------------------------------------------------------------------------------


async def test_no_key_where_keys_are_required_is_401_with_a_challenge(api: Any, required: None) -> None:
    response = await api.get(PATH)

    assert_problem(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tributary"'


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer tb_nope"},
        {"Authorization": "bearer  tb_AAAAAAAA_" + "A" * 46},  # the right shape, the wrong checksum
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": ""},
        {"X-API-Key": "", "Authorization": "Bearer tb_AAAAAAAA_"},
    ],
)
async def test_malformed_key_is_401_invalid_token_without_a_database_query(
    api: Any, required: None, headers: dict[str, str]
) -> None:
    response = await api.get(PATH, headers=headers)

    assert_problem(response, 401, "authentication_failed")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tributary", error="invalid_token"'
    assert key_cache().queries == 0


@pytest.mark.parametrize(
    "authorization", ["Basic YWxpY2U6c2VjcmV0", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Bearer", "tb_AAAA"]
)
async def test_the_end_users_own_authorization_is_not_taken_for_a_key(
    api: Any, settings: Any, authorization: str
) -> None:
    assert (await api.get(PATH, headers={"Authorization": authorization})).status_code == 200  # anonymous allowed
    settings.API_KEYS_REQUIRED = True

    response = await api.get(PATH, headers={"Authorization": authorization})

    assert_problem(response, 401, "not_authenticated")  # no key was sent, rather than a bad one
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tributary"'
    assert key_cache().queries == 0


async def test_unknown_key_is_401_and_cached_as_unknown(api: Any, required: None) -> None:
    key, record = await new_key()
    await ApiKey.objects.filter(pk=record.pk).adelete()

    for _ in range(3):
        body = assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")
        assert body["detail"] == "The API key is not known."
    assert key_cache().queries == 1  # negative caching


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"revoked": timezone.now() - timedelta(seconds=1)}, "The API key has been revoked."),
        ({"expires": timezone.now() - timedelta(seconds=1)}, "The API key has expired."),
    ],
)
async def test_revoked_or_expired_key_is_401(api: Any, change: dict[str, Any], detail: str) -> None:
    key, record = await new_key()
    await ApiKey.objects.filter(pk=record.pk).aupdate(**change)

    body = assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")
    assert body["detail"] == detail


async def test_an_inactive_clients_keys_are_refused(api: Any) -> None:
    key, _ = await new_key(active=False)

    assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")


async def test_a_key_sent_where_anonymous_calls_are_allowed_must_still_be_valid(api: Any) -> None:
    assert (await api.get(PATH)).status_code == 200  # anonymous: allowed by default outside production
    assert_problem(await api.get(PATH, headers=bearer("tb_AAAAAAAA_" + "A" * 46)), 401, "authentication_failed")


async def test_a_client_outside_its_scopes_is_403(api: Any, required: None) -> None:
    key, _ = await new_key(scopes=["get_product_overview"])

    assert_problem(await api.get(PATH, headers=bearer(key)), 403, "permission_denied")


async def test_a_client_inside_its_scopes_is_served(api: Any, required: None) -> None:
    key, _ = await new_key(scopes=["list_upstreams"])

    assert (await api.get(PATH, headers=bearer(key))).status_code == 200


async def test_probes_need_no_key(api: Any, required: None) -> None:
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/readyz")).status_code == 200
    assert (await api.get("/api/schema/")).status_code == 200


# --- Accepted ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
async def test_a_valid_key_is_served_in_either_header(api: Any, required: None, header: str) -> None:
    key, _ = await new_key()
    headers = bearer(key) if header == "Authorization" else {"X-API-Key": key}

    response = await api.get(PATH, headers=headers)

    assert response.status_code == 200, response.content


async def test_x_api_key_wins_and_authorization_is_left_to_the_end_user(api: Any, required: None) -> None:
    key, _ = await new_key()

    response = await api.get(PATH, headers={"X-API-Key": key, "Authorization": "Bearer end-user-token"})

    assert response.status_code == 200


# --- The per-worker cache ------------------------------------------------------------------------------------------


async def test_a_cached_key_costs_no_query(api: Any, required: None) -> None:
    key, _ = await new_key()

    for _ in range(5):
        assert (await api.get(PATH, headers=bearer(key))).status_code == 200

    assert key_cache().queries == 1


async def test_concurrent_misses_for_one_key_share_one_query(api: Any, required: None) -> None:
    key, _ = await new_key()

    statuses = await asyncio.gather(*(api.get(PATH, headers=bearer(key)) for _ in range(20)))

    assert [r.status_code for r in statuses] == [200] * 20
    assert key_cache().queries == 1


async def test_revoked_in_this_worker_is_refused_at_once(api: Any, required: None) -> None:
    key, record = await new_key()
    assert (await api.get(PATH, headers=bearer(key))).status_code == 200

    await asyncio.to_thread(call_command, "revoke_api_key", record.prefix, stdout=StringIO())

    assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")


async def test_revoked_by_another_worker_is_refused_once_the_ttl_has_passed(
    api: Any, required: None, settings: Any
) -> None:
    now = [1000.0]
    keys._cache = keys.KeyCache(ttl=settings.API_KEY_CACHE_TTL, max_size=100, clock=lambda: now[0])
    key, record = await new_key()
    assert (await api.get(PATH, headers=bearer(key))).status_code == 200
    # Another worker (another process) revokes it: no signal reaches this one.
    await ApiKey.objects.filter(pk=record.pk).aupdate(revoked=timezone.now())

    now[0] += settings.API_KEY_CACHE_TTL - 1
    assert (await api.get(PATH, headers=bearer(key))).status_code == 200  # still cached: within the TTL
    now[0] += 2
    assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")


async def test_a_cached_key_does_not_outlive_its_expiry(api: Any, required: None) -> None:
    now = [1000.0]
    keys._cache = keys.KeyCache(ttl=3600, max_size=100, clock=lambda: now[0])
    key, record = await new_key()
    await ApiKey.objects.filter(pk=record.pk).aupdate(expires=timezone.now() + timedelta(seconds=30))
    assert (await api.get(PATH, headers=bearer(key))).status_code == 200

    now[0] += 31
    await ApiKey.objects.filter(pk=record.pk).aupdate(expires=timezone.now() - timedelta(seconds=1))
    assert_problem(await api.get(PATH, headers=bearer(key)), 401, "authentication_failed")


async def test_the_cache_is_bounded() -> None:
    cache = keys.KeyCache(ttl=60, max_size=3)

    async def unknown(key: str) -> tuple[keys.Verdict, float | None]:
        return keys.Verdict(None, "unknown"), None

    for number in range(10):
        await cache.verdict(f"key-{number}", unknown)

    assert len(cache) == 3


# --- Last used, in batches -----------------------------------------------------------------------------------------


async def test_last_used_is_written_in_one_batch_not_per_request(api: Any, required: None) -> None:
    first, first_record = await new_key("first")
    second, second_record = await new_key("second")

    for _ in range(10):
        for key in (first, second):
            assert (await api.get(PATH, headers=bearer(key))).status_code == 200
    assert last_used().flushes == 0
    assert await ApiKey.objects.filter(last_used__isnull=False).acount() == 0

    await last_used().stop()  # what the lifespan's shutdown does; the periodic flush does the same

    assert last_used().flushes == 1
    assert (
        await ApiKey.objects.filter(pk__in=[first_record.pk, second_record.pk], last_used__isnull=False).acount() == 2
    )


async def test_the_periodic_flush_runs_on_its_own(api: Any, required: None, settings: Any) -> None:
    settings.API_KEY_LAST_USED_INTERVAL = 0.05
    keys.reset()
    key, record = await new_key()
    assert (await api.get(PATH, headers=bearer(key))).status_code == 200

    for _ in range(100):
        if last_used().flushes:
            break
        await asyncio.sleep(0.05)

    assert (await ApiKey.objects.aget(pk=record.pk)).last_used is not None


# --- Never forwarded -----------------------------------------------------------------------------------------------


def forwarding_catalog(settings: Any) -> respx.Route:
    settings.UPSTREAMS = {
        name: {**values, **({"FORWARD_HEADERS": "Authorization"} if name == "catalog" else {})}
        for name, values in settings.UPSTREAMS.items()
    }
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    catalog = router.get("http://catalog.upstream.test/products/7").respond(json=PRODUCT)
    router.get("http://inventory.upstream.test/stock/SKU-00007").respond(json=STOCK)
    router.get("http://reviews.upstream.test/products/7/summary").respond(json=REVIEW)
    install_registry(settings.UPSTREAMS, lambda config: httpx.MockTransport(router.async_handler))
    return catalog


async def test_a_key_sent_in_authorization_is_never_forwarded(api: Any, required: None, settings: Any) -> None:
    catalog = forwarding_catalog(settings)
    key, _ = await new_key()

    assert (await api.get("/api/products/7/", headers=bearer(key))).status_code == 200

    assert "authorization" not in catalog.calls.last.request.headers


async def test_with_x_api_key_the_end_users_authorization_is_forwarded(api: Any, required: None, settings: Any) -> None:
    catalog = forwarding_catalog(settings)
    key, _ = await new_key()

    headers = {"X-API-Key": key, "Authorization": "Bearer end-user"}
    assert (await api.get("/api/products/7/", headers=headers)).status_code == 200

    sent = catalog.calls.last.request.headers
    assert sent["Authorization"] == "Bearer end-user"
    assert "x-api-key" not in sent


# --- Commands ------------------------------------------------------------------------------------------------------


def test_create_api_key_prints_a_working_key_once_and_creates_the_client() -> None:
    out, err = StringIO(), StringIO()

    call_command("create_api_key", "partner-a", "--name", "prod", "--rate-limit", "50", stdout=out, stderr=err)

    key = out.getvalue().strip()
    assert is_well_formed(key)
    record = ApiKey.objects.get(prefix=key[3:11])
    assert (record.client.name, record.client.rate_limit, record.name) == ("partner-a", 50, "prod")
    assert "Created client 'partner-a'" in err.getvalue()
    assert key not in err.getvalue()


def test_create_api_key_with_expiry_and_scopes() -> None:
    out = StringIO()
    call_command(
        "create_api_key", "web", "--expires-in-days", "7", "--scope", "list_upstreams", stdout=out, stderr=StringIO()
    )

    record = ApiKey.objects.get(prefix=out.getvalue().strip()[3:11])
    assert record.client.scopes == ["list_upstreams"]
    assert timedelta(days=6) < record.expires - timezone.now() <= timedelta(days=7)


@pytest.mark.parametrize("args", [["Not A Slug"], ["ok", "--expires-in-days", "0"], ["ok", "--rate-limit", "0"]])
def test_create_api_key_refuses_bad_arguments(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("create_api_key", *args, stdout=StringIO(), stderr=StringIO())


def test_revoke_api_key_by_prefix_whole_key_or_client() -> None:
    keys_made = []
    for _ in range(3):
        out = StringIO()
        call_command("create_api_key", "app", stdout=out, stderr=StringIO())
        keys_made.append(out.getvalue().strip())

    call_command("revoke_api_key", keys_made[0], stdout=StringIO())  # the whole key
    assert ApiKey.objects.filter(revoked__isnull=False).count() == 1
    call_command("revoke_api_key", "--client", "app", stdout=StringIO())
    assert ApiKey.objects.filter(revoked__isnull=True).count() == 0
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "ZZZZZZZZ", stdout=StringIO())


# --- Migrations ----------------------------------------------------------------------------------------------------


def test_the_models_and_migrations_agree() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


# --- No thread hop once a key is cached ----------------------------------------------------------------------------


async def test_an_authenticated_aggregate_costs_no_thread_hop_once_the_key_is_cached(
    demo: Any, hops: HopCounter, required: None
) -> None:
    demo()
    key, _ = await new_key()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1", headers=bearer(key)
    ) as client:
        assert (await client.get("/api/products/7/")).status_code == 200  # the key's lookup: a hop, once
        assert hops.hops  # the counter works here: the lookup went through sync_to_async
        hops.hops.clear()

        for path in ("/api/products/7/", "/api/multiple-external-data/", "/api/products/?page_size=3"):
            assert (await client.get(path)).status_code == 200

    assert hops.hops == []
    assert key_cache().queries == 1


# --- Which deployments require keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_module", "env", "required"),
    [
        ("config.settings.local", {}, "False"),  # `make run` works out of the box
        ("config.settings.local", {"API_KEYS_REQUIRED": "true"}, "True"),
        ("config.settings.production", {}, "True"),
        ("config.settings.production", {"API_KEYS_REQUIRED": "false"}, "False"),
    ],
)
def test_production_requires_keys_unless_told_otherwise_and_local_does_not(
    settings_module: str, env: dict[str, str], required: str
) -> None:
    production = {"DJANGO_SECRET_KEY": "s", "DJANGO_ALLOWED_HOSTS": "api.example", "DEMO_UPSTREAMS": "true"}
    command = ["shell", "-c", "from django.conf import settings; print(settings.API_KEYS_REQUIRED)"]
    result = manage(settings_module, command, **production, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == required  # after the shell's "N objects imported" line


def test_a_bad_key_setting_is_a_start_up_problem() -> None:
    result = manage("config.settings.local", ["check"], API_KEYS_REQUIRED="sometimes", API_KEY_CACHE_TTL="-1")

    assert result.returncode != 0
    assert "API_KEYS_REQUIRED='sometimes'" in result.stderr
    assert "API_KEY_CACHE_TTL='-1'" in result.stderr


def manage(settings_module: str, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "API_KEY"))}
    # (production needs its upstreams' URLs; DEMO_UPSTREAMS=true stands in for them here)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**clean, "DJANGO_SETTINGS_MODULE": settings_module, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
