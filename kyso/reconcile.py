"""The start-up check: the documents catalogue and the object store must agree.

Two kinds of disagreement, handled differently on purpose:

- **a catalogue row without its object** is data loss (rows are written only after their object,
  so a crash cannot cause it: someone deleted or lost objects, or the service points at the wrong
  store). It is logged as an error and returned in the report; the row is never deleted, because
  it is the evidence of what is missing and what to restore from backup;
- **an object without a row** is what a crash between ``store.put`` and ``catalogue.record``
  leaves behind (or a call whose database write failed). It is repaired: the object is
  catalogued with what the store knows (size, content type, time stored, and the uploader and
  unit that kyso writes into the object's metadata; empty for objects stored without them).

Invariants:
- the check streams both sides in ascending ref order and merges them, so it needs memory for
  neither listing, and one store listing instead of one request per row (S3: a page of 1000
  keys per request);
- every candidate is confirmed before it is acted on (the object looked up again, the row read
  again), because the service keeps writing while the check runs;
- an object younger than ``min_age`` is not catalogued but reported as deferred: it may belong
  to an upload still between its put and its row, in this or another process, and the upload's
  own row (with its uploader and file name) must win;
- it can be stopped between steps (``stop``); the report then says it is incomplete;
- replicas on one PostgreSQL database run it one at a time: the start-up task holds the
  advisory lock ``RECONCILE_LOCK`` for its pass, and a replica that finds the lock taken skips
  its pass (another replica is checking the same catalogue and store). Two passes at once
  would still be correct (every repair is confirmed and inserts only if absent), only wasteful:
  a full listing of the store per replica.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

import storage
from kyso import db
from kyso.catalogue import Catalogue, CatalogueEntry
from kyso.errors import KysoError, NotFound

__all__ = [
    "DEFAULT_MIN_AGE",
    "RECONCILE_LOCK",
    "ReconcileError",
    "ReconcileReport",
    "ReconcileTask",
    "reconcile",
    "start_reconcile",
]

log = logging.getLogger(__name__)

RECONCILE_LOCK = 0x6B79_736F_0002
"""The PostgreSQL advisory lock key held by the replica running the check ("kyso" 2)."""

DEFAULT_MIN_AGE = timedelta(minutes=1)
"""Objects younger than this are left alone: their upload may still be writing its row."""

_MAX_LISTED = 1000  # refs kept per list in a report; the counts stay exact beyond it


class ReconcileError(KysoError):
    """The check cannot compare the two sides (for example, they are not listed in one order)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    """What the check found. Lists hold at most 1000 refs each; the ``*_count`` are exact."""

    rows_checked: int
    objects_checked: int
    missing: tuple[str, ...]
    """Catalogued refs whose object is not in the store (logged as errors, rows kept)."""
    missing_count: int
    catalogued: tuple[str, ...]
    """Refs of objects that had no row and were catalogued by the check."""
    catalogued_count: int
    deferred: tuple[str, ...]
    """Refs of objects without a row that were too young to catalogue (see ``min_age``)."""
    deferred_count: int
    complete: bool
    """False when the check was stopped before it saw both sides to the end."""

    @property
    def consistent(self) -> bool:
        """True when the whole catalogue and store were compared and every row has its object."""
        return self.complete and self.missing_count == 0


class _Found:
    """A list of refs capped at ``_MAX_LISTED`` with an exact count."""

    def __init__(self) -> None:
        self.refs: list[str] = []
        self.count = 0

    def add(self, ref: str) -> bool:
        """Count ``ref``; return True when it is also kept in the list (so worth a log line)."""
        self.count += 1
        if len(self.refs) < _MAX_LISTED:
            self.refs.append(ref)
            return True
        return False


def reconcile(
    *,
    store: storage.ObjectStore,
    catalogue: Catalogue,
    min_age: timedelta = DEFAULT_MIN_AGE,
    stop: threading.Event | None = None,
) -> ReconcileReport:
    """Compare ``catalogue`` with ``store``; catalogue orphaned objects, report missing ones.

    Raises ``storage.StorageError`` when the store cannot be listed or read, and
    ``ReconcileError`` when a side is not listed in ascending order (a merge would then be
    wrong). Nothing is deleted in any case.
    """
    cutoff = datetime.now(UTC) - min_age
    rows = _ascending(itertools.chain.from_iterable(catalogue.refs()), "catalogue")
    objects = _ascending((str(ref) for ref in store.iter_refs()), "object store")
    missing, catalogued, deferred = _Found(), _Found(), _Found()
    rows_checked = objects_checked = 0
    row, obj = next(rows, None), next(objects, None)
    stopped = False
    while row is not None or obj is not None:
        if stop is not None and stop.is_set():
            stopped = True
            break
        if row is not None and (obj is None or row < obj):
            rows_checked += 1
            # The listing may have passed this ref before its object was stored: look again.
            if not store.exists(row) and missing.add(row):
                log.error(
                    "a catalogued document has no object in the store: restore it from a "
                    "backup or replica; the catalogue row is kept",
                    extra={"ref": row},
                )
            row = next(rows, None)
        elif obj is not None and (row is None or obj < row):
            objects_checked += 1
            _repair(obj, store, catalogue, cutoff, catalogued, deferred)
            obj = next(objects, None)
        else:
            rows_checked += 1
            objects_checked += 1
            row, obj = next(rows, None), next(objects, None)
    report = ReconcileReport(
        rows_checked=rows_checked,
        objects_checked=objects_checked,
        missing=tuple(missing.refs),
        missing_count=missing.count,
        catalogued=tuple(catalogued.refs),
        catalogued_count=catalogued.count,
        deferred=tuple(deferred.refs),
        deferred_count=deferred.count,
        complete=not stopped,
    )
    _log_summary(report)
    return report


def _repair(
    ref: str,
    store: storage.ObjectStore,
    catalogue: Catalogue,
    cutoff: datetime,
    catalogued: _Found,
    deferred: _Found,
) -> None:
    """Catalogue an object found without a row, unless a row appeared or it is too young."""
    try:
        catalogue.get(ref)
    except NotFound:
        pass
    else:
        return  # its upload wrote the row while the check was running
    try:
        info = store.stat(ref)
    except storage.ObjectNotFound:
        return  # listed, then gone: nothing to catalogue
    created = info.created or datetime.now(UTC)
    if created > cutoff:
        deferred.add(ref)
        return
    catalogue.record(
        CatalogueEntry(
            ref=ref,
            size=info.size,
            content_type=info.content_type,
            filename=info.metadata.get("filename", ""),
            uploader=info.metadata.get("uploader", ""),
            unit_code=info.metadata.get("unit", ""),
            created_at=created,
        )
    )
    if catalogued.add(ref):
        uploader = info.metadata.get("uploader", "")
        log.warning(
            "catalogued a stored document that had no catalogue row (its call failed or was"
            " interrupted between storing and cataloguing it; no ledger event records it)"
            + ("" if uploader else "; its uploader is unknown"),
            extra={"ref": ref, "size": info.size, "uploader": uploader or "-"},
        )


def _ascending(refs: Iterable[str], side: str) -> Iterator[str]:
    """Pass ``refs`` through, raising ReconcileError if one is not greater than the one before."""
    previous = ""
    for ref in refs:
        if ref <= previous:
            raise ReconcileError(
                f"the {side} listed {ref} after {previous}: the start-up check needs both sides "
                'in ascending order (for PostgreSQL, a deterministic collation such as "C" on '
                "catalogue_documents.ref); nothing was changed after this point"
            )
        previous = ref
        yield ref


def _log_summary(report: ReconcileReport) -> None:
    extra = {
        "rows": report.rows_checked,
        "objects": report.objects_checked,
        "missing": report.missing_count,
        "catalogued": report.catalogued_count,
        "deferred": report.deferred_count,
    }
    if not report.complete:
        log.warning("start-up check stopped before the end", extra=extra)
    elif report.missing_count:
        log.error("start-up check: catalogued documents are missing from the store", extra=extra)
    else:
        log.info("start-up check: catalogue and store agree", extra=extra)


class ReconcileTask:
    """The check running in a daemon thread, so that start-up does not wait for it.

    When the first pass defers young objects, the task waits ``min_age`` and makes one more
    pass, so that what a crash just before this start left behind is catalogued without
    another restart. ``stop()`` asks it to finish at the next step and waits for it (call it
    before the database engine is disposed). A failure is logged, never raised into the server.
    """

    def __init__(
        self,
        *,
        store: storage.ObjectStore,
        catalogue: Catalogue,
        min_age: timedelta = DEFAULT_MIN_AGE,
        engine: sa.Engine | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._catalogue = catalogue
        self._min_age = min_age
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kyso-reconcile", daemon=True)
        self.report: ReconcileReport | None = None
        """The result, once the check has finished (None while running or after a failure)."""
        self.error: BaseException | None = None
        self.skipped = False
        """True when another replica held the check's lock: this one did not run it."""

    def start(self) -> ReconcileTask:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> ReconcileReport | None:
        """Wait for the check (at most ``timeout`` seconds) and return its report."""
        self._thread.join(timeout)
        return self.report

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        if self._engine is None:
            self._checks()
            return
        try:
            with db.try_advisory_lock(self._engine, RECONCILE_LOCK) as taken:
                if taken:
                    self._checks()
                    return
        except Exception as exc:
            self.error = exc
            log.error(
                "the start-up check of catalogue and store could not take its lock; it runs"
                " again at the next start",
                extra={"reason": f"{type(exc).__name__}: {exc}"},
            )
            return
        self.skipped = True
        log.info(
            "start-up check of catalogue and store skipped: another replica is running it",
            extra={"lock": RECONCILE_LOCK},
        )

    def _checks(self) -> None:
        try:
            report = self._pass()
            if report.deferred_count and not self._stop.wait(self._min_age.total_seconds()):
                # Objects too young at the first pass (a crash just before this start leaves
                # them): once they are old enough, one more pass catalogues what is still
                # without a row.
                report = self._pass()
            self.report = report
        except Exception as exc:  # reported here: a thread's exception would be lost
            self.error = exc
            log.error(
                "the start-up check of catalogue and store could not finish; it runs again at "
                "the next start",
                extra={"reason": f"{type(exc).__name__}: {exc}"},
            )

    def _pass(self) -> ReconcileReport:
        return reconcile(
            store=self._store, catalogue=self._catalogue, min_age=self._min_age, stop=self._stop
        )


def start_reconcile(
    *,
    store: storage.ObjectStore,
    catalogue: Catalogue,
    min_age: timedelta = DEFAULT_MIN_AGE,
    engine: sa.Engine | None = None,
) -> ReconcileTask:
    """Start the check in the background and return its task (``stop()`` it at shutdown).

    With ``engine`` (the catalogue's database), the check runs only while this process holds
    ``RECONCILE_LOCK`` there (see the module docstring)."""
    return ReconcileTask(store=store, catalogue=catalogue, min_age=min_age, engine=engine).start()
