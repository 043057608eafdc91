"""Who is asking: a shared bearer token, a JWT carrying the user id, or (development) anyone."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

import jwt
from loguru import logger

from settings import Settings

USER_ID_PATTERN = r"^[A-Za-z0-9._@:+-]+$"
"""The characters of a user id (at most 128 of them), in HTTP bodies, paths and tokens."""
USER_ID = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")
RESERVED_IDS = frozenset({"kane"})  # the bot's own LiveKit identity


class AuthError(Exception):
    """The caller could not be authenticated; the message is safe to send back."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller.

    Parameters:
        user_id: The user the JWT names, or None when the caller (a trusted backend holding
            the shared token, or anyone in development) may name the user itself.
        method: How the caller was authenticated: "jwt", "token" or "open".
    """

    user_id: str | None
    method: str


class Authenticator:
    """Checks the Authorization header of a request against the configured secrets."""

    def __init__(self, settings: Settings):
        """Read the secrets once.

        Args:
            settings: KANE_API_TOKEN, KANE_JWT_SECRET, KANE_JWT_AUDIENCE and KANE_ENV.
        """
        self._api_token = settings.kane_api_token
        self._jwt_secret = settings.kane_jwt_secret
        self._jwt_audience = settings.kane_jwt_audience
        self._open = settings.is_development

    def authenticate(self, authorization: str | None) -> Caller:
        """Authenticate a request from its Authorization header.

        Args:
            authorization: The header's value, if any.

        Raises:
            AuthError: Missing or wrong credentials (never says which secret was tried).
        """
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            if self._open:
                return Caller(user_id=None, method="open")
            raise AuthError("missing bearer token")

        if self._api_token is not None and hmac.compare_digest(
            credentials.encode(), self._api_token.get_secret_value().encode()
        ):
            return Caller(user_id=None, method="token")

        if self._jwt_secret is not None and credentials.count(".") == 2:
            return Caller(user_id=self._user_from_jwt(credentials), method="jwt")

        if self._open:
            return Caller(user_id=None, method="open")
        raise AuthError("invalid bearer token")

    def _user_from_jwt(self, token: str) -> str:
        assert self._jwt_secret is not None
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret.get_secret_value(),
                algorithms=["HS256"],
                audience=self._jwt_audience,
                options={"require": ["sub", "exp"], "verify_aud": self._jwt_audience is not None},
            )
        except jwt.PyJWTError as e:
            logger.info(f"{self}: JWT refused: {type(e).__name__}")
            raise AuthError("invalid bearer token") from e
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not USER_ID.match(user_id) or user_id in RESERVED_IDS:
            raise AuthError("the token names no valid user (sub)")
        return user_id
