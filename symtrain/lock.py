"""One process at a time in a folder: :class:`FolderLock`.

The lock is ``FOLDER/.symtrain.lock``, held with ``flock`` (advisory, exclusive) for as
long as the process works in the folder; it holds the process id for the message a
second process gets. The kernel drops a ``flock`` when its process ends, however it ends,
so a lock left by a killed process (the file stays) never blocks: the next process takes
it over. Processes of one distributed run share it: only their main process locks.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import SymmetryError

LOCK_NAME = ".symtrain.lock"


class FolderInUseError(SymmetryError):
    """Another process holds the folder's lock (it is training or sweeping there)."""


class FolderLock:
    """An exclusive lock on ``folder`` (created if missing). ``what`` names the folder in
    the error, e.g. ``"run folder"``.

    >>> import tempfile
    >>> with FolderLock(tempfile.mkdtemp()) as lock:
    ...     lock.held
    True
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`FolderInUseError` naming the process that holds it."""
        import fcntl

        if self.held:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise FolderInUseError(f"{self.what} {self.folder} is in use by another process ({holder}; lock "
                                       f"{self.path}); wait for it to finish, or choose another folder") from None
            try:  # the holder may have removed the file between our open and our flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (nothing if not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
