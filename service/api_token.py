"""The HTTP API's token: a file in the data folder, readable by the service account only.

`dmp-bridge init` creates it (32 random bytes, URL-safe base64, mode 0600, written to a temporary
name then renamed so a crash never leaves half a token); the service loads it at start and the
practice software's installer copies it into the software's settings. Re-running init keeps it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from service.config import ConfigError

TOKEN_FILE_NAME = "jeton-api"  # noqa: S105 (a file name, not a secret)
TOKEN_BYTES = 32


def create_token_file(path: Path) -> str:
    """Write a new token to `path` (replacing any) and return it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # Created 0600 from the start (never readable by others, even for an instant).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return token


def ensure_token_file(path: Path) -> str:
    """The token of `path`, created first if the file does not exist (for `init`)."""
    if path.exists():
        return load_token(path)
    return create_token_file(path)


def load_token(path: Path) -> str:
    """Read the token; raise ConfigError (French) if it is missing, malformed or too open."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"Le jeton de l'API HTTP ({path}) est introuvable : relancez « dmp-bridge init "
            "DOSSIER » pour le créer (la configuration existante est gardée)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Le jeton de l'API HTTP ({path}) est illisible : {exc}.") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"Le jeton de l'API HTTP ({path}) est lisible par d'autres comptes que celui du "
            f"service : restreignez-le avec « chmod 600 {path} »."
        )
    if len(token) < 32 or not token.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"Le jeton de l'API HTTP ({path}) est invalide : supprimez le fichier puis relancez "
            "« dmp-bridge init DOSSIER » pour en créer un nouveau."
        )
    return token
