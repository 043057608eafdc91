"""OpenAI chat completions through an HTTP client the caller gives, shared across sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pipecat.services.openai.llm import OpenAILLMService


class SharedClientOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` whose `AsyncOpenAI` client sends through a given HTTP client.

    Pipecat's service makes a new HTTP client (and SSL context) for each service; this one
    takes it from the caller through Pipecat's `create_client` hook, and never closes it.
    """

    def __init__(self, *, http_client: DefaultAsyncHttpxClient, **kwargs: Any):
        """Build the service.

        Args:
            http_client: The HTTP client requests go through; the caller closes it.
            **kwargs: Passed on to `OpenAILLMService` (api_key, base_url, settings, ...).
        """
        # Set before the base class's __init__, which calls `create_client`.
        self._shared_http_client = http_client
        super().__init__(**kwargs)

    def create_client(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> AsyncOpenAI:
        """Create the `AsyncOpenAI` client on the shared HTTP client.

        Args:
            api_key: OpenAI API key.
            base_url: Custom base URL for the API.
            organization: OpenAI organization ID.
            project: OpenAI project ID.
            default_headers: Additional HTTP headers.
            **kwargs: The service's other arguments, unused here.
        """
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            http_client=self._shared_http_client,
            default_headers=default_headers,
        )
