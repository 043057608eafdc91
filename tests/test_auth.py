import time

import jwt
import pytest

from api.auth import Authenticator, AuthError
from settings import Settings

SECRET = "a-jwt-secret-that-is-long-enough-for-hs256"


def settings(**values) -> Settings:
    base = {"kane_env": "production", "kane_api_token": "shared-token", "kane_jwt_secret": SECRET}
    base.update(values)
    return Settings(_env_file=None, **base)


def token(sub: str = "ada", *, secret: str = SECRET, ttl: int = 60, **claims) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl, **claims}, secret, "HS256")


def test_shared_token_lets_a_trusted_caller_name_the_user():
    caller = Authenticator(settings()).authenticate("Bearer shared-token")
    assert caller.method == "token" and caller.user_id is None


def test_jwt_carries_the_user():
    caller = Authenticator(settings()).authenticate(f"Bearer {token('ada')}")
    assert caller.user_id == "ada" and caller.method == "jwt"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic c2hhcmVkLXRva2Vu",
        "Bearer wrong-token",
        f"Bearer {token(secret='another-secret-that-is-long-enough-for-it')}",
        f"Bearer {token(ttl=-10)}",
    ],
)
def test_missing_or_wrong_credentials_are_refused(header):
    with pytest.raises(AuthError):
        Authenticator(settings()).authenticate(header)


def test_jwt_audience_is_checked_when_configured():
    auth = Authenticator(settings(kane_jwt_audience="kane"))
    assert auth.authenticate(f"Bearer {token(aud='kane')}").user_id == "ada"
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {token(aud='someone-else')}")


def test_development_may_be_open_but_still_checks_a_jwt_user():
    auth = Authenticator(settings(kane_env="development", kane_api_token=None))
    assert auth.authenticate(None).method == "open"
    assert auth.authenticate(f"Bearer {token('grace')}").user_id == "grace"


@pytest.mark.parametrize("sub", ["kane", "", "a b", "x" * 129, "ada;drop"])
def test_a_jwt_must_name_a_valid_user_who_is_not_the_bot(sub):
    with pytest.raises(AuthError):
        Authenticator(settings()).authenticate(f"Bearer {token(sub)}")
