"""Experiments: run talks through KANE without a room, and replay kept sessions.

`python -m experiments simulate` plays a WAV through a whole offline session (or, asked to,
one on the engines the settings configure) and prints what the phone would get; `python -m
experiments replay` reruns kept sessions offline through the pipeline they ran with and
another one, and compares the two. See `experiments.cli`.
"""
