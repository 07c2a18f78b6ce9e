"""Counts of what a process fetched from the network to sign, for an operator's metrics.

Every request to a time-stamping authority and every OCSP or CRL fetch is recorded where it is
made (``signer.timestamps.FailoverTimeStamper``, ``signer.revocation.RevocationCache``, and for
online verification the HTTP session of ``signer.verify.fetching``) into the process's
``FetchTally``. An answer taken from the revocation cache is not a fetch and is not counted. The
outcomes are few and fixed (they are label values of the metrics):

- TSA: ``ok``; ``failed`` (a network or HTTP error, a timeout, a malformed reply); ``refused``
  (the TSA answered with a refusal status).
- OCSP: ``ok``; ``failed`` (a network or HTTP error, a timeout, a URL that is not HTTP(S), a
  response that cannot be read); ``refused`` (the responder answered with a status other than
  successful: malformedRequest, internalError, tryLater, sigRequired or unauthorized).
- CRL: ``ok``; ``failed`` (as for OCSP; a CRL server cannot refuse).
- OCSP and CRL in online verification only: ``blocked`` (the verifier's fetch rules refused the
  URL or its address before any connection: ``signer.verify.fetching``).

In a worker process the tally keeps nothing: it forwards each record at once (``forward``, which
sends it to the parent as a note: ``to_parent``), so that a worker killed before it answers has
already told the parent what it fetched. In the server the tally keeps the sum, which the metrics
read (``totals``), and adds what the workers' notes carry (``add``).
"""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from workers import send_note

__all__ = ["FetchCounts", "FetchTally", "Outcome", "RevocationKind", "from_note", "to_parent"]

Outcome = Literal["ok", "failed", "refused", "blocked"]
RevocationKind = Literal["ocsp", "crl"]


@dataclass
class FetchCounts:
    """Fetches by what was asked and how it ended (picklable: it travels in a worker's note).

    ``tsa_requests``: by ``(url, outcome)``; ``tsa_certificate_not_after``: the not-after of the
    certificate each TSA signed its last token with; ``revocation_requests``: by ``(kind, url,
    outcome)``, ``kind`` ``ocsp`` or ``crl``."""

    tsa_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    tsa_certificate_not_after: dict[str, datetime] = field(default_factory=dict)
    revocation_requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, other: FetchCounts) -> None:
        """Add ``other``'s counts to these; its certificate dates replace these (later)."""
        self.tsa_requests.update(other.tsa_requests)
        self.tsa_certificate_not_after.update(other.tsa_certificate_not_after)
        self.revocation_requests.update(other.revocation_requests)

    def copy(self) -> FetchCounts:
        return FetchCounts(
            tsa_requests=Counter(self.tsa_requests),
            tsa_certificate_not_after=dict(self.tsa_certificate_not_after),
            revocation_requests=Counter(self.revocation_requests),
        )

    def __bool__(self) -> bool:
        return bool(self.tsa_requests or self.tsa_certificate_not_after or self.revocation_requests)


class FetchTally:
    """Where one process records its fetches (thread-safe); see the module docstring.

    ``forward``: called with each record instead of keeping it (a worker's way to its parent).
    """

    def __init__(self, *, forward: Callable[[FetchCounts], None] | None = None) -> None:
        self._forward = forward
        self._lock = threading.Lock()
        self._totals = FetchCounts()

    def tsa(self, url: str, outcome: Outcome, *, not_after: datetime | None = None) -> None:
        """One request to the TSA at ``url``; ``not_after``: of the certificate that signed
        the token it answered."""
        counts = FetchCounts(tsa_requests=Counter({(url, outcome): 1}))
        if not_after is not None:
            counts.tsa_certificate_not_after[url] = not_after
        self.add(counts)

    def revocation(self, kind: RevocationKind, url: str, outcome: Outcome) -> None:
        """One OCSP request or CRL download from ``url``."""
        self.add(FetchCounts(revocation_requests=Counter({(kind, url, outcome): 1})))

    def add(self, counts: FetchCounts) -> None:
        """Count ``counts`` here (or forward them)."""
        if self._forward is not None:
            self._forward(counts)
            return
        with self._lock:
            self._totals.add(counts)

    def totals(self) -> FetchCounts:
        """A copy of everything counted here since start."""
        with self._lock:
            return self._totals.copy()


def to_parent(counts: FetchCounts) -> None:
    """A worker's ``forward``: send ``counts`` to the parent now, as a note (``from_note``)."""
    send_note(pickle.dumps(counts, protocol=pickle.HIGHEST_PROTOCOL))


def from_note(payload: bytes) -> FetchCounts:
    """The counts a worker's note carries (``to_parent``)."""
    # Only bytes from this package's own worker over a private socket, never a client's.
    counts = pickle.loads(payload)  # noqa: S301
    assert isinstance(counts, FetchCounts)
    return counts
