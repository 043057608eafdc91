"""KANE's side of the LiveKit room, beyond what Pipecat's transport offers."""
