"""KANE's own frame processors, the stages between speech to text and the language model."""
