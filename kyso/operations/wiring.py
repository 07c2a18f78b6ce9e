"""Every operation, built once from the application and handed to the servicers."""

from __future__ import annotations

from dataclasses import dataclass

from kyso.app import Application
from kyso.operations.archive import Archive
from kyso.operations.direct_transfer import DirectTransfer
from kyso.operations.directory import DirectoryReading
from kyso.operations.documents import Documents
from kyso.operations.exchange import Exchange
from kyso.operations.ledger_reading import LedgerReading
from kyso.operations.notifications import Notifications
from kyso.operations.signing import Sealing
from kyso.operations.twophase import TwoPhase
from kyso.operations.verifying import Verifying

__all__ = ["Operations"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Operations:
    documents: Documents
    direct_transfer: DirectTransfer
    sealing: Sealing
    two_phase: TwoPhase
    exchange: Exchange
    verifying: Verifying
    directory: DirectoryReading
    ledger_reading: LedgerReading
    notifications: Notifications
    archive: Archive

    @classmethod
    def build(cls, app: Application) -> Operations:
        documents = Documents(app)
        return cls(
            documents=documents,
            direct_transfer=DirectTransfer(app, documents),
            sealing=Sealing(app, documents),
            two_phase=TwoPhase(app, documents),
            exchange=Exchange(app, documents),
            verifying=Verifying(app, documents),
            directory=DirectoryReading(app),
            ledger_reading=LedgerReading(app),
            notifications=Notifications(app),
            archive=Archive(app, documents),
        )
