"""Offline speech synthesis (eSpeak NG) shared by tests and the offline TTS engine."""
