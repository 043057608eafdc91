"""Rooms and access tokens on the LiveKit server, through its server API."""

from __future__ import annotations

import datetime

import aiohttp
from livekit import api as lkapi


class LiveKitRooms:
    """Creates a room per session and mints the tokens that let the person and the bot in."""

    BOT_IDENTITY = "kane"

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        http: aiohttp.ClientSession,
        token_ttl: datetime.timedelta = datetime.timedelta(minutes=15),
    ):
        """Talk to the LiveKit server at `url`.

        Args:
            url: The server's URL as the worker reaches it (ws://, wss://, http:// or https://).
            api_key: LiveKit API key.
            api_secret: LiveKit API secret.
            http: A shared HTTP session.
            token_ttl: How long a minted token lets its holder join.
        """
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._http = http
        self._token_ttl = token_ttl
        self._api = lkapi.LiveKitAPI(url, api_key, api_secret, session=http)

    @property
    def http_url(self) -> str:
        """The server's HTTP URL."""
        return self._url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)

    async def create_room(self, name: str, *, empty_timeout_s: int = 60) -> None:
        """Create a room for two participants (the person and the bot).

        Args:
            name: The room's name.
            empty_timeout_s: LiveKit closes the room this long after it empties.
        """
        await self._api.room.create_room(
            lkapi.CreateRoomRequest(name=name, empty_timeout=empty_timeout_s, max_participants=2)
        )

    async def delete_room(self, name: str) -> None:
        """Close a room and disconnect whoever is in it."""
        await self._api.room.delete_room(lkapi.DeleteRoomRequest(room=name))

    def user_token(self, *, room: str, identity: str, name: str | None = None) -> str:
        """A token that lets one person into one room, publishing audio and data."""
        grants = lkapi.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_publish_sources=["microphone"],
        )
        return (
            lkapi.AccessToken(self._api_key, self._api_secret)
            .with_identity(identity)
            .with_name(name or identity)
            .with_grants(grants)
            .with_ttl(self._token_ttl)
            .to_jwt()
        )

    def bot_token(self, *, room: str) -> str:
        """A token for KANE's bot in one room."""
        grants = lkapi.VideoGrants(
            room_join=True, room=room, agent=True, can_update_own_metadata=True
        )
        return (
            lkapi.AccessToken(self._api_key, self._api_secret)
            .with_identity(self.BOT_IDENTITY)
            .with_name("KANE")
            .with_kind("agent")
            .with_grants(grants)
            .with_ttl(self._token_ttl)
            .to_jwt()
        )

    async def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether the LiveKit server answers over HTTP."""
        try:
            async with self._http.get(
                self.http_url, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        """Release the server API client."""
        await self._api.aclose()
