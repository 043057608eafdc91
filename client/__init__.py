"""A reference LiveKit client that joins a KANE room the way the iOS app does."""
