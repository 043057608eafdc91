"""The life of one bot session."""
