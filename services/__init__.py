"""Factories for the speech, language and voice services, and the TTS failover."""
