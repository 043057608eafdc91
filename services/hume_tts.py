"""Hume Octave TTS whose client can be pointed at any base URL (an emulator or a proxy)."""

from __future__ import annotations

from typing import Any

import httpx
from hume import AsyncHumeClient
from pipecat.services.hume.tts import DEFAULT_HEADERS, HumeTTSService


class HumeOctaveTTSService(HumeTTSService):
    """Pipecat's Hume TTS service, with a client built for a given base URL.

    Pipecat's service always talks to Hume's production host. KANE keeps Hume Octave as a
    selectable voice, so its client is rebuilt here with `base_url`, which lets tests use a
    loopback emulator and deployments use a proxy.
    """

    def __init__(self, *, api_key: str, base_url: str, timeout_s: float = 30.0, **kwargs: Any):
        """Create the service.

        Args:
            api_key: Hume API key.
            base_url: Root of Hume's HTTP API, for example ``https://api.hume.ai``.
            timeout_s: Timeout of one HTTP request, in seconds.
            **kwargs: Passed on to `HumeTTSService` (settings, sample_rate, ...).
        """
        super().__init__(api_key=api_key, **kwargs)
        # The parent made a client for the production host, which has sent nothing and holds
        # no connection; replace it, keeping Pipecat's client headers.
        self._http_client = httpx.AsyncClient(headers=DEFAULT_HEADERS, timeout=timeout_s)
        self._client = AsyncHumeClient(
            api_key=api_key, base_url=base_url.rstrip("/"), httpx_client=self._http_client
        )
