"""Which status code may follow which, per delivery.

A delivery of a *new* document: 01 arrived (automatic) → 02 rejected | 03 accepted … 06 completed,
only forwards: 01 → {02, 03, 04, 05, 06}; 03 → {04, 05, 06}; 04 → {05, 06}; 05 → {06}.
A delivery of a *revoke, update or replace*: 01 → {13, 15, 16}; 13 → {15, 16}.
02, 06, 15 and 16 are final. Repeating the current code is allowed and changes nothing (a retry).

Statuses arriving from other hubs may come out of order (hops are retried independently), so
``rank`` orders codes: a hub keeps the highest-ranked code it has seen as current.
"""

from __future__ import annotations

from exchange.edxml.model import BusinessType, StatusCode
from exchange.errors import InvalidStatusTransition

__all__ = ["BUSINESS_CODES", "check_transition", "rank"]

_S = StatusCode
_NEW: dict[StatusCode | None, frozenset[StatusCode]] = {
    None: frozenset({_S.ARRIVED}),
    _S.ARRIVED: frozenset({_S.REJECTED, _S.ACCEPTED, _S.ASSIGNED, _S.IN_PROGRESS, _S.COMPLETED}),
    _S.ACCEPTED: frozenset({_S.ASSIGNED, _S.IN_PROGRESS, _S.COMPLETED}),
    _S.ASSIGNED: frozenset({_S.IN_PROGRESS, _S.COMPLETED}),
    _S.IN_PROGRESS: frozenset({_S.COMPLETED}),
}
_CHANGE: dict[StatusCode | None, frozenset[StatusCode]] = {
    None: frozenset({_S.ARRIVED}),
    _S.ARRIVED: frozenset({_S.REVOKE_REQUESTED, _S.AGREED, _S.REFUSED}),
    _S.REVOKE_REQUESTED: frozenset({_S.AGREED, _S.REFUSED}),
}
BUSINESS_CODES = frozenset({_S.REVOKE_REQUESTED, _S.AGREED, _S.REFUSED})
_RANK = {
    _S.ARRIVED: 1,
    _S.ACCEPTED: 2,
    _S.ASSIGNED: 3,
    _S.IN_PROGRESS: 4,
    _S.REVOKE_REQUESTED: 2,
    _S.REJECTED: 9,
    _S.COMPLETED: 9,
    _S.AGREED: 9,
    _S.REFUSED: 9,
}


def rank(code: StatusCode | None) -> int:
    """How far along a delivery with this code is (0 for none; final codes highest)."""
    return 0 if code is None else _RANK[code]


def check_transition(
    *, business: BusinessType, current: StatusCode | None, new: StatusCode, where: str
) -> bool:
    """True when ``new`` changes the status, False when it repeats it; raise when not allowed."""
    if new == current:
        return False
    table = _NEW if business is BusinessType.NEW else _CHANGE
    if new not in table.get(current, frozenset()):
        raise InvalidStatusTransition(
            f"status {new.value} cannot follow {current.value if current else 'no status'}"
            f" for {where}",
            field="status",
        )
    return True
