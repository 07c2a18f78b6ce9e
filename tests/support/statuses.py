"""Reading what a refused RPC carries: the google.rpc.BadRequest field it names."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = ["bad_request_field"]


def bad_request_field(error: grpc.aio.AioRpcError) -> str:
    """The field of the first BadRequest violation in ``error``'s status details."""
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return str(bad.field_violations[0].field)
    raise AssertionError("the status carries no BadRequest detail")
