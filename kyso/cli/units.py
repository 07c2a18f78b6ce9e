"""Units by name for the clerk's commands: ``Sở Y tế (000.00.17.H49)`` rather than a bare code.

Names come from the server's directory (DirectoryService.GetUnit), once per code per command;
a code the directory does not know is shown as it is."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from kyso.v1 import directory_pb2, directory_pb2_grpc

__all__ = ["UnitNames"]


class UnitNames:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = directory_pb2_grpc.DirectoryServiceStub(channel)
        self._names: dict[str, str] = {}

    def load(self, codes: Iterable[str]) -> None:
        for code in codes:
            self.name(code)

    def name(self, code: str) -> str:
        """The unit's name ("" when unknown)."""
        if not code:
            return ""
        if code not in self._names:
            try:
                unit = self._stub.GetUnit(directory_pb2.GetUnitRequest(code=code), timeout=10.0)
                self._names[code] = unit.name
            except grpc.RpcError:
                self._names[code] = ""
        return self._names[code]

    def label(self, code: str) -> str:
        """``Name (code)``, or the code alone when the directory has no name for it."""
        name = self.name(code)
        return f"{name} ({code})" if name else code or "--"
