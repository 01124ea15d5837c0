"""Click command groups, one module per area; ``dataengine.cli`` registers them."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A usage or configuration error: one line on stderr, exit code 2, no traceback."""

    exit_code = 2
