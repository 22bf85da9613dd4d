"""Errors a user sees. Each message is one line that names the file (where there is one) and the
reason; the CLI prints it without a traceback and the GUI shows it in the window."""

from __future__ import annotations

import os


class DeblurStudioError(Exception):
    """Base of every error caused by the user's input or environment, not by a bug."""


class ImageReadError(DeblurStudioError):
    """A file that cannot be read as an image (missing, unreadable, truncated, not an image,
    too big)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageWriteError(DeblurStudioError):
    """A result that cannot be written; nothing is left behind at the destination."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelNotFoundError(DeblurStudioError):
    """A model id with no checkpoint on disk; the message says how to produce one."""


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was cancelled. Not an error: the job just stops."""
