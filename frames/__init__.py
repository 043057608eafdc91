"""KANE's own Pipecat frames."""
