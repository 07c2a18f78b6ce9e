"""Where a PIN comes from: an environment variable, a file, or an interactive prompt.

Never from argv. A ``PinSource`` only describes the source; ``read()`` fetches the PIN when it is
needed. Neither the description (``str``/``repr``) nor any error message contains the PIN.
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from hsm.errors import PinSourceError

__all__ = ["PinSource"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PinSource:
    """A PIN's source. Build one with ``from_env``, ``from_file``, ``prompt`` or ``parse``."""

    kind: Literal["env", "file", "prompt"]
    where: str
    """Variable name (env), file path (file) or prompt text (prompt)."""

    @classmethod
    def from_env(cls, name: str) -> PinSource:
        if not name:
            raise PinSourceError("an environment PIN source needs a variable name")
        return cls(kind="env", where=name)

    @classmethod
    def from_file(cls, path: str | Path) -> PinSource:
        return cls(kind="file", where=str(path))

    @classmethod
    def prompt(cls, text: str = "PIN: ") -> PinSource:
        return cls(kind="prompt", where=text)

    @classmethod
    def parse(cls, text: str) -> PinSource:
        """Parse a config value or a URI ``pin-source``.

        Forms: ``env:NAME``, ``file:/path`` (or ``file:///path``), an absolute path, ``prompt``
        or ``prompt:TEXT``.
        """
        if text.startswith("env:"):
            return cls.from_env(text[4:])
        if text.startswith("file:"):
            path = unquote(urlsplit(text).path)
            if not path:
                raise PinSourceError(f"PIN source {text!r} has no file path")
            return cls.from_file(path)
        if text == "prompt":
            return cls.prompt()
        if text.startswith("prompt:"):
            return cls.prompt(text[7:])
        if text.startswith("/"):
            return cls.from_file(text)
        raise PinSourceError(
            f"PIN source {text!r} is not understood: use env:NAME, file:/path, an absolute"
            " path, or prompt"
        )

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"

    def read(self) -> str:
        """Return the PIN; raise ``PinSourceError`` if the source is missing or empty."""
        if self.kind == "env":
            value = os.environ.get(self.where)
            if value is None:
                raise PinSourceError(f"environment variable {self.where} (the PIN) is not set")
        elif self.kind == "file":
            value = self._read_file()
        else:
            try:
                value = getpass.getpass(self.where)
            except (EOFError, OSError) as exc:
                raise PinSourceError(
                    "could not prompt for the PIN (no terminal?): use an env: or file: source"
                ) from exc
        if not value:
            raise PinSourceError(f"the PIN from {self} is empty")
        return value

    def _read_file(self) -> str:
        path = Path(self.where)
        try:
            info = path.stat()
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PinSourceError(
                f"cannot read the PIN file {path}: {type(exc).__name__}"
                f" ({getattr(exc, 'strerror', None) or 'not UTF-8'})"
            ) from exc
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Not fatal (containers often mount secrets 0644), but operators should know.
            _log.warning("PIN file %s is readable by group or others; chmod 600 it", path)
        # Files written by `echo` end in a newline that is not part of the PIN.
        return raw.rstrip("\r\n")
