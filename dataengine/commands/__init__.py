"""Click command groups, one module per area; ``dataengine.cli`` registers them."""

from __future__ import annotations

import click

from dataengine.redact import redact


class UserError(click.ClickException):
    """A usage or configuration error: one line on stderr, exit code 2, no traceback. Credentials in the
    message (a password in a URL, a token) are redacted."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))
