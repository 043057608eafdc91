"""Experiments: run talks through KANE without a room, and replay kept sessions.

`python -m experiments simulate` plays a WAV through a whole session (the engines the
settings give, offline without keys) and prints what the phone would get; `python -m
experiments replay` reruns kept sessions offline through the pipeline they ran with and
another one, and compares the two. See `experiments.cli`.
"""
