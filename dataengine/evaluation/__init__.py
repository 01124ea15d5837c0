"""A labeled evaluation corpus (the project's own TTS speech plus known degradations) and its scoring."""
