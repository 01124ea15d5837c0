"""Text-to-speech: the backend interface, its registry and the TTS pipeline stage."""
