"""Speaker embeddings of spoken turns, the voice-diversity report and the voice-drift bound."""
