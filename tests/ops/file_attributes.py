"""Real ways to make the file system refuse an operation, even to root (the tests run as root,
so permission bits do not stop anything): ext4/xfs attributes set with `chattr`.

- `+a` on a folder: files may be created in it, but none removed or renamed over, so an
  `os.replace` onto a file of it fails (EPERM) while that file stays open-able: what a Windows
  sharing violation does to a purge (another program has the journal open);
- `+i` on a file: it cannot be replaced nor opened for writing (a file locked away).

Skips the test where `chattr` is missing or refused (not root, a file system without them)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _chattr(flag: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True,
                          timeout=30, check=False)


@contextlib.contextmanager
def attribute(path: Path, name: str) -> Iterator[None]:
    """`path` carries the attribute `name` ("a" or "i") inside the block, and no longer after."""
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs)")
    done = _chattr(f"+{name}", path)
    if done.returncode != 0:
        pytest.skip(f"chattr +{name} refused here: {done.stderr.strip()}")
    try:
        yield
    finally:
        _chattr(f"-{name}", path)
