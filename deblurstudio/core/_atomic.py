"""Atomic file replacement: write a temporary file beside the destination, then rename it over.

Anyone who opens the destination sees either the previous file or the complete new one, never a
half-written file. When anything goes wrong inside the ``with`` block or while committing (an
encoder error, a full disk, a cancelled job, Ctrl-C), the temporary file is deleted and the
destination is left exactly as it was. Image export, batch results and batch manifests all write
through :func:`atomic_write`.

Example::

    with atomic_write(out_path) as fp:
        image.save(fp, format="PNG")
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing that replaces `path` when the block ends without error.

    The temporary file lives in the destination's own folder (so the final ``os.replace`` is a
    rename on one file system, which is atomic), is named ``.<name>.<random>.tmp`` (hidden, and
    never mistaken for an image by a folder walk) and gets the permissions a plain ``open`` would
    give (0o666 minus the umask). On success the data is flushed and fsync'ed before the rename,
    and the folder is fsync'ed after it on POSIX, so the new file survives a power cut.

    Args:
        path: the destination; its folder must exist. An existing file there is replaced.
        mode: "wb" (default) for bytes or "w" for text.
        encoding: text encoding for mode "w" (default UTF-8); must be None for "wb".

    Yields:
        The open file object; write to it, don't close it.

    Raises:
        OSError: from creating, writing or renaming (missing folder, permission denied, disk
            full, destination is a folder); the temporary file is already removed when it
            propagates, as it is for any exception raised inside the block.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # os.open with 0o666 (not tempfile.mkstemp, which forces 0o600) so the result has the same
    # permissions as any other file the user creates; O_EXCL never clobbers an existing file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp_path, flags, 0o666)
    try:
        text_encoding = (encoding or "utf-8") if mode == "w" else None
        with os.fdopen(fd, mode, encoding=text_encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself. Best effort: Windows cannot open a folder, and some network
    file systems refuse to fsync one; the file is already in place either way."""
    if os.name != "posix":
        return
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
