"""How a check-in reaches the person: the ``Notifier`` interface and its webhook.

``WebhookNotifier`` POSTs the check-in as JSON and signs it, so the receiver can tell the
request came from KANE and was not altered or replayed. A receiver verifies it like this:

1. Read the raw request body as bytes (before any JSON parsing: the signature is over the
   exact bytes sent).
2. Read ``X-Kane-Timestamp`` (Unix seconds) and reject the request if it is more than a few
   minutes from the receiver's clock (replay protection).
3. Compute ``hex(HMAC-SHA256(secret, timestamp + "." + body))`` and compare it, in constant
   time, with ``X-Kane-Signature`` minus its ``sha256=`` prefix.
4. Deduplicate on the payload's ``id`` (``checkin:<user_id>:<day>``): delivery is at least
   once, so a worker that dies between sending and recording may cause a second delivery.

``verify_signature`` does steps 2 and 3 and serves as the reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

SIGNATURE_HEADER = "X-Kane-Signature"
TIMESTAMP_HEADER = "X-Kane-Timestamp"
# How far a receiver should accept a timestamp from its own clock, by default.
DEFAULT_TOLERANCE_S = 300


class Notifier(Protocol):
    """Delivers a check-in to a user."""

    async def send(self, user_id: str, payload: dict[str, Any]) -> None:
        """Delivers ``payload`` to ``user_id``.

        Args:
            user_id: Who the check-in is for.
            payload: A JSON-serialisable check-in (see ``CheckinScheduler``).

        Raises:
            Exception: Any failure; the scheduler retries later.
        """
        ...


class WebhookError(RuntimeError):
    """The webhook did not accept a check-in."""


class WebhookNotifier:
    """Sends check-ins as HMAC-signed JSON POSTs to one URL.

    The secret and the URL's path and query (which may carry a token) never appear in logs
    or in ``str(notifier)``.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        http: aiohttp.ClientSession,
        timeout_s: float = 10.0,
    ) -> None:
        """Creates a notifier on a shared HTTP session.

        Args:
            url: The receiver's ``http(s)://`` URL.
            secret: Shared HMAC key; must not be empty.
            http: Session to send with; the caller owns and closes it.
            timeout_s: Limit on one whole request, in seconds.

        Raises:
            ValueError: The URL is not http(s) or the secret is empty.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the check-in webhook URL must be an http(s) URL")
        if not secret:
            raise ValueError("the check-in webhook secret must not be empty")
        self._url = url
        self._origin = f"{parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __str__(self) -> str:
        return f"WebhookNotifier({self._origin})"

    __repr__ = __str__

    async def send(self, user_id: str, payload: dict[str, Any]) -> None:
        """POSTs ``payload`` as JSON, signed; returns once the receiver answered 2xx.

        Args:
            user_id: Who the check-in is for (only logged).
            payload: The check-in, JSON-serialisable.

        Raises:
            WebhookError: The receiver answered with a non-2xx status.
            aiohttp.ClientError, TimeoutError: The request failed or took too long.
        """
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: "sha256=" + sign(self._secret, timestamp, body),
        }
        async with self._http.post(
            self._url, data=body, headers=headers, timeout=self._timeout
        ) as response:
            if not 200 <= response.status < 300:
                raise WebhookError(f"{self} answered HTTP {response.status}")
        logger.debug(f"{self}: check-in for {user_id} delivered")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Returns the hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``.

    Args:
        secret: The shared key.
        timestamp: The ``X-Kane-Timestamp`` value, as sent.
        body: The exact request body.
    """
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Checks a received check-in the way a receiver should (see the module docstring).

    Args:
        secret: The shared key.
        body: The raw request body.
        timestamp: The ``X-Kane-Timestamp`` header.
        signature: The ``X-Kane-Signature`` header (``sha256=<hex>``).
        tolerance_s: Largest accepted distance between the timestamp and ``now``.
        now: The receiver's time in Unix seconds; defaults to the system clock.

    Returns:
        True if the signature matches and the timestamp is fresh.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        return False
    scheme, _, received = signature.partition("=")
    if scheme != "sha256":
        return False
    return hmac.compare_digest(sign(key, timestamp, body), received)
