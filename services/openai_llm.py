"""OpenAI chat completions through an HTTP client the caller gives, shared across sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from loguru import logger
from openai import (
    APITimeoutError,
    AsyncOpenAI,
    AsyncStream,
    DefaultAsyncHttpxClient,
    NotGiven,
    Omit,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.settings import LLMSettings
from pipecat.utils.types import NotGiven as PipecatNotGiven
from pipecat.utils.types import assert_given

_UNSET = (NotGiven, Omit, PipecatNotGiven)
# Parameters of `chat.completions.create` that shape the request rather than its body.
_REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


class SharedClientOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` whose `AsyncOpenAI` client sends through a given HTTP client.

    Pipecat's service makes a new HTTP client (and SSL context) for each service; this one
    takes it from the caller through Pipecat's `create_client` hook, and never closes it.

    It also posts the request as Pipecat's adapter built it, not through the SDK's
    `chat.completions.create`, whose type-driven transform of the parameters walks every
    message on the event loop: ~0.14 ms a message (4.3 ms for 30), on every turn's path to
    the first token, growing with the conversation. The adapter's messages and tools are
    plain JSON already; the body is the same (tested against the SDK's).
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

    async def get_chat_completions(self, context: LLMContext) -> AsyncStream[ChatCompletionChunk]:
        """Stream a chat completion for `context`, retrying once without a timeout if asked.

        Args:
            context: The messages, tools and tool choice to send.

        Returns:
            The stream of chunks.
        """
        self._log_llm_response(context)
        settings: LLMSettings = self._settings
        invocation = await self.get_llm_adapter().get_llm_invocation_params(
            context,
            system_instruction=assert_given(settings.system_instruction),
            convert_developer_to_user=not self.supports_developer_role,
        )
        params = self.build_chat_completion_params(invocation)
        if not self._retry_on_timeout:
            return await self._post_chat(params)
        try:
            return await asyncio.wait_for(self._post_chat(params), timeout=self._retry_timeout_secs)
        except (TimeoutError, APITimeoutError):
            logger.debug(f"{self}: retrying the chat completion without a timeout")
            return await self._post_chat(params)

    async def _post_chat(self, params: Mapping[str, Any]) -> AsyncStream[ChatCompletionChunk]:
        """POST /chat/completions with `params` as `chat.completions.create` takes them."""
        body: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for name, value in params.items():
            if isinstance(value, _UNSET):
                continue
            if name in _REQUEST_OPTIONS:
                if value is not None or name == "timeout":  # a None timeout: none at all
                    options[_REQUEST_OPTIONS[name]] = value
            else:
                body[name] = value
        return await self._client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body=body,
            options=options,  # type: ignore[arg-type]  # RequestOptions' keys, built above
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
