"""Quests beyond storage: the LLM's quest tools and the session's picture of the quests."""
