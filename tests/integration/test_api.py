import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import jwt
import pytest

from api.server import create_app
from settings import Settings

SECRET = "a-jwt-secret-that-is-long-enough-for-hs256"


@pytest.fixture
async def api(database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        kane_env="production",
        kane_api_token="shared-token",
        kane_jwt_secret=SECRET,
        database_url=database_dsn,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kane") as client:
            yield client


async def session_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM sessions")
    finally:
        await conn.close()


async def test_health_reports_database_version_and_what_is_missing(api):
    response = await api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["version"] == "0.1.0"
    assert body["livekit"]["ok"] is False
    assert body["status"] == "degraded"
    assert any("DEEPGRAM_API_KEY" in m for m in body["missing"])
    assert body["sessions"]["active"] == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Token shared-token"}]
)
async def test_connect_without_valid_credentials_is_401_and_creates_nothing(
    api, database_dsn, headers
):
    response = await api.post("/connect", json={"user_id": "ada"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert await session_rows(database_dsn) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "ada; DROP TABLE"}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 42}, "user_id"),
        ({"user_id": "ada", "surprise": True}, "surprise"),
        ({"user_id": "ada", "app_version": "x" * 65}, "app_version"),
    ],
)
async def test_malformed_body_is_422_naming_the_field(api, database_dsn, body, field):
    response = await api.post(
        "/connect", json=body, headers={"Authorization": "Bearer shared-token"}
    )
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])
    assert await session_rows(database_dsn) == 0


async def test_body_that_is_not_json_is_422(api):
    response = await api.post(
        "/connect",
        content=b"{not json",
        headers={"Authorization": "Bearer shared-token", "Content-Type": "application/json"},
    )
    assert response.status_code == 422


async def test_shared_token_caller_must_name_the_user(api):
    response = await api.post("/connect", json={}, headers={"Authorization": "Bearer shared-token"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_id"]


async def test_jwt_user_cannot_ask_for_someone_else(api):
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 60}, SECRET, "HS256")
    response = await api.post(
        "/connect", json={"user_id": "grace"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403


async def test_without_livekit_connect_says_what_is_missing(api):
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 60}, SECRET, "HS256")
    response = await api.post("/connect", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert "LIVEKIT_URL" in response.json()["detail"]


def bearer(sub: str) -> dict[str, str]:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


async def test_a_person_reads_their_own_draft_and_no_one_elses(api):
    own = await api.get("/users/ada/draft", headers=bearer("ada"))
    assert own.status_code == 200
    draft = own.json()
    assert draft["user_id"] == "ada" and draft["main"] is None and draft["carried_over"] == []
    assert (await api.get("/users/grace/draft", headers=bearer("ada"))).status_code == 403
    assert (await api.get("/users/grace/draft")).status_code == 401
    trusted = await api.get("/users/grace/draft", headers={"Authorization": "Bearer shared-token"})
    assert trusted.status_code == 200
    bad = await api.get("/users/a%20b/draft", headers={"Authorization": "Bearer shared-token"})
    assert bad.status_code == 422
