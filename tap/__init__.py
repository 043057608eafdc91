"""KANE's tap: every frame of a session, journaled and translated for the phone."""
