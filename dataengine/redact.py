"""Credentials never reach the terminal or a log: user:password in URLs and Hugging Face tokens are
replaced by ``***`` in every error message (``UserError``) and every log record (``RedactingFilter``)."""

from __future__ import annotations

import logging
import re

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"]+@")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def redact(text: str) -> str:
    """``text`` with URL credentials (``scheme://user:pass@``) and ``hf_…`` tokens replaced by ``***``."""
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _HF_TOKEN.sub("hf_***", text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message (and a formatted exception) of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text, record.exc_info = redact(text), None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of ``logger`` (the root logger by default), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
