"""Publishing a finished build: checksums, verification, dataset card and plots, local and Hub targets."""

from __future__ import annotations


class PublishError(ValueError):
    """A publish, pull or verify step that cannot go on; the message is one line for the user."""
