"""Writing outputs safely: atomically, never over an existing file unless asked; file hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError, first_line

#: Characters of an output's name that its temporary file's name starts with (at most
#: 4 bytes each, so that the temporary name stays within 255 bytes).
_TEMPORARY_PREFIX_CHARS = 60


def check_name_length(path: Path, source: Path) -> None:
    """OutputError naming ``source`` if the name of its output ``path`` is longer than
    the file system allows."""
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        limit = 255
    length = len(os.fsencode(path.name))
    if length > limit:
        raise OutputError(
            f"{source}: its output name {path.name!r} is {length} bytes, more than the file system "
            f"allows ({limit}): rename the input"
        )


def refuse_existing(path: Path, overwrite: bool) -> None:
    """OutputError if ``path`` exists and ``overwrite`` is not set."""
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output exists (pass --overwrite to replace it)")


@contextmanager
def atomic_output(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    With ``replace`` False, a ``path`` that appeared meanwhile (another run writing the
    same output) is kept and OutputError raised: the file moves in only if none is there.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name[:_TEMPORARY_PREFIX_CHARS]}.", suffix=".part", dir=path.parent
        )
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or first_line(exc)})") from None
    tmp = Path(tmp_name)
    try:  # from here on, whatever happens (Ctrl-C included), the temporary file goes
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual mode
        yield tmp
        if replace:
            os.replace(tmp, path)
        else:
            _move_in_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _move_in_new(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s file the name ``path`` unless that exists (a hard link fails then,
    atomically; where the file system has none, check and rename)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        pass
    except OSError:  # no hard links here (FAT, some network file systems)
        if not path.exists():
            os.replace(tmp, path)
            return
    raise OutputError(
        f"{path}: output exists, written meanwhile by another run (pass --overwrite to replace it)"
    )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
