"""The application's exception root and the one table that maps errors to gRPC status codes.

Every RPC goes through :func:`to_status` (called by the interceptor in ``kyso.interceptors``).
The table is ordered most specific first; the first class an exception is an instance of wins.
An exception that is in no row is unexpected: it becomes INTERNAL with the request id and
nothing of its text, so no internals (paths, SQL, key labels) reach a client.

Domain messages are written for people (what is wrong and what to do) and are passed through.
An exception may carry ``field`` (the request field at fault); it becomes a
``google.rpc.BadRequest`` field violation in the status details.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "PLACEMENT_FIELDS",
    "AlreadyExists",
    "AuthenticationError",
    "ConfigError",
    "DatabaseError",
    "FailedPrecondition",
    "KysoError",
    "NotFound",
    "OverShare",
    "Overloaded",
    "PermissionDenied",
    "RequestInvalid",
    "SchemaAheadError",
    "StatusInfo",
    "StreamIdle",
    "Unavailable",
    "fields_named",
    "to_status",
]


class KysoError(Exception):
    """Root of the application's errors."""

    field: str | None = None


class ConfigError(KysoError):
    """The configuration is invalid; the message names the key and the problem."""


class DatabaseError(KysoError):
    """The metadata database is unreachable or unusable."""


class SchemaAheadError(DatabaseError):
    """The database carries migrations this version of kyso does not know."""


class RequestInvalid(KysoError):
    """A request field is missing or malformed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(KysoError):
    """What the request names does not exist."""


class AuthenticationError(KysoError):
    """No credential, or one that matches no configured client."""


class PermissionDenied(KysoError):
    """The caller is known but may not do this."""


class AlreadyExists(KysoError):
    """What the request would create exists already with other content (e.g. an idempotency
    key used for another request)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class FailedPrecondition(KysoError):
    """The request is valid but the state does not allow it (e.g. a session already completed)."""


class Overloaded(KysoError):
    """The caller asks more than its share, or the server is busy: retry after ``retry_after``
    seconds (sent as a ``google.rpc.RetryInfo`` detail)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverShare(Overloaded):
    """The caller is over one of its own limits (rate, calls or streams in flight), as
    opposed to the server being busy for everyone: the refusal may be held back a moment
    (``[limits] refusal_delay_seconds``) so that a client which retries at once is slowed."""

    def __init__(self, message: str, *, retry_after: float, client: str) -> None:
        super().__init__(message, retry_after=retry_after)
        self.client = client


class StreamIdle(KysoError):
    """A client stream sent nothing for longer than the server waits."""


class Unavailable(KysoError):
    """A dependency (database, storage, token, peer) cannot be reached; retry later."""


PLACEMENT_FIELDS: Mapping[str | None, str] = {
    "rect": "placement.rect",
    "page": "placement.rect.page",
    "field_name": "placement.field_name",
    None: "document",
}
"""The signer's own field names as SignPdfRequest and PrepareSignatureRequest write them."""


@contextmanager
def fields_named(names: Mapping[str | None, str]) -> Iterator[None]:
    """Name request fields as the .proto writes them in errors raised inside.

    A domain error names the field in its own words (``rect``, ``code``) or not at all; the
    operation that passed the request's value knows its path (``placement.rect``,
    ``from_unit``). An error whose ``field`` is a key of ``names`` leaves with
    ``names[field]``, so that its ``google.rpc.BadRequest`` detail names the request's field;
    the key ``None`` names the field of an INVALID_ARGUMENT error that names none.
    """
    try:
        yield
    except Exception as exc:
        field = getattr(exc, "field", None)
        if field is None and mapped_code(exc) is not grpc.StatusCode.INVALID_ARGUMENT:
            raise  # no field to name on an error that is not about the request's input
        if field in names:
            with suppress(AttributeError):  # an exception class with slots: left as it is
                exc.field = names[field]  # type: ignore[attr-defined]
        raise


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """A gRPC status ready to send: code, message, and serialized google.rpc.Status details."""

    code: grpc.StatusCode
    message: str
    details: bytes | None


def _table() -> list[tuple[type[BaseException], grpc.StatusCode]]:
    # Imported here so that this module stays importable on its own (the CLI's config errors
    # need it before any domain package is loaded).
    import audit
    import exchange
    import hsm
    import signer
    import storage
    from signer import remote, twophase

    code = grpc.StatusCode
    return [
        # the application's own
        (RequestInvalid, code.INVALID_ARGUMENT),
        (NotFound, code.NOT_FOUND),
        (AlreadyExists, code.ALREADY_EXISTS),
        (AuthenticationError, code.UNAUTHENTICATED),
        (PermissionDenied, code.PERMISSION_DENIED),
        (FailedPrecondition, code.FAILED_PRECONDITION),
        (Unavailable, code.UNAVAILABLE),
        (Overloaded, code.RESOURCE_EXHAUSTED),
        (StreamIdle, code.DEADLINE_EXCEEDED),
        (SchemaAheadError, code.FAILED_PRECONDITION),
        (DatabaseError, code.UNAVAILABLE),
        # storage/
        (storage.InvalidRef, code.INVALID_ARGUMENT),
        (storage.InvalidMetadata, code.INVALID_ARGUMENT),
        (storage.DeclaredHashMismatch, code.INVALID_ARGUMENT),
        (storage.ObjectNotFound, code.NOT_FOUND),
        (storage.StagedObjectMissing, code.FAILED_PRECONDITION),
        (storage.IntegrityError, code.DATA_LOSS),
        (storage.StorageFull, code.RESOURCE_EXHAUSTED),
        (storage.StorageUnavailable, code.UNAVAILABLE),
        (storage.StorageConfigError, code.UNAVAILABLE),
        (storage.UnsupportedOperation, code.FAILED_PRECONDITION),
        # signer/
        (signer.UnknownKeyAlias, code.NOT_FOUND),
        (signer.CertificationForbidsSigning, code.FAILED_PRECONDITION),
        (signer.NotRenewable, code.FAILED_PRECONDITION),
        (signer.TimestampUnavailable, code.UNAVAILABLE),
        (signer.RevocationUnavailable, code.UNAVAILABLE),
        (signer.KeyUnavailable, code.UNAVAILABLE),
        (signer.SignerUnavailable, code.UNAVAILABLE),
        (twophase.SessionNotFound, code.NOT_FOUND),
        (twophase.SessionClosed, code.FAILED_PRECONDITION),
        (twophase.CertificateRejected, code.FAILED_PRECONDITION),
        (twophase.PreparedDocumentAltered, code.FAILED_PRECONDITION),
        (twophase.RemoteRequestNotFound, code.NOT_FOUND),
        (remote.ProviderUnavailable, code.UNAVAILABLE),
        (remote.ProviderRefused, code.FAILED_PRECONDITION),
        (remote.BatchMismatch, code.FAILED_PRECONDITION),
        (signer.SigningError, code.INVALID_ARGUMENT),
        # hsm/: a request never names a token; every failure of the server's device is
        # UNAVAILABLE (retry after the operator fixes it), except a key the policy refuses.
        (hsm.KeyPolicyViolation, code.FAILED_PRECONDITION),
        (hsm.MechanismUnsupported, code.FAILED_PRECONDITION),
        (hsm.HsmError, code.UNAVAILABLE),
        # exchange/
        (exchange.InvalidUnitCode, code.INVALID_ARGUMENT),
        (exchange.PackageInvalid, code.INVALID_ARGUMENT),
        (exchange.SignatureInvalid, code.INVALID_ARGUMENT),
        (exchange.UntrustedSigner, code.INVALID_ARGUMENT),
        (exchange.UnsignedPackageRefused, code.INVALID_ARGUMENT),
        (exchange.WeakSignatureRefused, code.INVALID_ARGUMENT),
        (exchange.DirectoryImportError, code.INVALID_ARGUMENT),
        (exchange.UnitNotFound, code.NOT_FOUND),
        (exchange.DeliveryNotFound, code.NOT_FOUND),
        (exchange.DuplicateDocument, code.ALREADY_EXISTS),
        (exchange.InvalidStatusTransition, code.FAILED_PRECONDITION),
        (exchange.NoRoute, code.FAILED_PRECONDITION),
        (exchange.SigningFailed, code.UNAVAILABLE),
        (exchange.HubConfigError, code.UNAVAILABLE),
        # audit/
        (audit.EventNotFound, code.NOT_FOUND),
        (audit.HeadNotFound, code.NOT_FOUND),
        (audit.InvalidTreeSize, code.INVALID_ARGUMENT),
        (audit.InvalidQuery, code.INVALID_ARGUMENT),
        (audit.InvalidEvent, code.INVALID_ARGUMENT),
        (audit.LedgerCorrupt, code.DATA_LOSS),
        (audit.LedgerUnavailable, code.UNAVAILABLE),
        (audit.LedgerClosed, code.UNAVAILABLE),
        (audit.HeadSigningFailed, code.UNAVAILABLE),
        # the contract's RPCs that a release has not built
        (NotImplementedError, code.UNIMPLEMENTED),
    ]


_TABLE: list[tuple[type[BaseException], grpc.StatusCode]] | None = None


def mapped_code(exc: BaseException) -> grpc.StatusCode | None:
    """The status code the table gives ``exc``, or None when it is unexpected."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return None


MAX_MESSAGE_CHARS = 512
"""The longest error message sent: a message echoes request values (an id, a file name), and
gRPC carries it, percent-encoded, in a trailer that clients cap at 8–16 KiB."""


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    cut = len(message) - MAX_MESSAGE_CHARS + 40
    head = MAX_MESSAGE_CHARS * 3 // 4
    return f"{message[:head]} … [{cut} characters left out] … {message[head + cut :]}"


RETRY_AFTER_SECONDS = 2
"""The retry delay an UNAVAILABLE status advises (``google.rpc.RetryInfo`` in its details)."""


def _as_domain(exc: BaseException) -> BaseException:
    """Library errors that have a meaning for a client, as the application's own: a database
    connection lost or refused is UNAVAILABLE (retry), never INTERNAL. Its text (host, SQL)
    stays in the server's log."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.DisconnectionError):
        return DatabaseError(
            f"the database is unavailable; retry in {RETRY_AFTER_SECONDS} seconds or more"
        )
    return exc


def to_status(exc: BaseException, *, request_id: str) -> StatusInfo:
    """Map ``exc`` to the status the client sees; unexpected errors say only the request id.

    UNAVAILABLE carries a ``google.rpc.RetryInfo`` detail: the error is worth retrying."""
    exc = _as_domain(exc)
    code = mapped_code(exc)
    if code is None:
        return StatusInfo(
            grpc.StatusCode.INTERNAL,
            f"internal error (request id {request_id}); the operator can find it in the logs",
            None,
        )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        message = "this RPC is part of the kyso.v1 contract but not implemented in this release"
    else:
        message = _bounded(str(exc) or type(exc).__name__)
    packed: list[any_pb2.Any] = []
    field = getattr(exc, "field", None)
    if field or code is grpc.StatusCode.INVALID_ARGUMENT:
        # every INVALID_ARGUMENT carries a BadRequest; "" when no one field is at fault
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field or "", description=message
        )
        packed.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    if isinstance(exc, Overloaded):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(timedelta(seconds=exc.retry_after))
        packed.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    if code is grpc.StatusCode.UNAVAILABLE:
        delay = duration_pb2.Duration()
        delay.FromSeconds(RETRY_AFTER_SECONDS)
        packed.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    details = None
    if packed:
        details = status_pb2.Status(
            code=code.value[0], message=message, details=packed
        ).SerializeToString()
    return StatusInfo(code, message, details)


def _packed(message: Message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail
