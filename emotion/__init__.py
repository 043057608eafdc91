"""How the person sounds: analyzers of a turn's voice and words, and what they estimate."""
