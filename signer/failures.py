"""pyHanko's failures while a signature is built, as the signer's precise errors.

Both signing flows run pyHanko on an untrusted document inside ``pdf_failures``: a parser or
signing failure becomes ``CertificationForbidsSigning`` or ``PdfCorrupt`` (a clean rejection),
never an internal error.

Invariant: the signer's own errors pass through unchanged, and every translated error is
raised ``from`` pyHanko's (the cause stays in logs and tracebacks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.general import SigningError as PyHankoSigningError

from signer.errors import CertificationForbidsSigning, PdfCorrupt, SigningError

__all__ = ["pdf_failures"]


@contextmanager
def pdf_failures(*, doing: str) -> Iterator[None]:
    """Translate pyHanko's failures in the block; ``doing`` completes "the PDF cannot be …"
    (e.g. ``"signed"``)."""
    try:
        yield
    except SigningError:
        raise
    except PyHankoSigningError as exc:
        if "forbids" in str(exc):
            raise CertificationForbidsSigning(
                "the document's certification forbids further signatures"
            ) from exc
        raise PdfCorrupt(f"the PDF cannot be {doing}: {exc}") from exc
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise PdfCorrupt(f"the PDF cannot be {doing} ({type(exc).__name__}: {exc})") from exc
