"""Text-level filters that run before any audio is made."""
