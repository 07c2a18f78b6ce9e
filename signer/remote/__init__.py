"""Remote signing: a user's key held by a provider signs hashes after the user approves.

``base`` is the port (``RemoteProvider``) and its errors; ``csc`` drives CSC v1.0.4/v2 servers
(kyso's own facade among them); ``smartca`` drives the asynchronous request → transaction →
status gateways of Vietnamese providers. Two-phase sessions use them through
``kyso.operations.remote``; nothing here imports the application.
"""

from signer.remote.base import (
    Approval,
    BatchMismatch,
    ProviderRefused,
    ProviderUnavailable,
    RemoteCredential,
    RemoteError,
    RemoteProvider,
    Transaction,
    check_batch,
)
from signer.remote.csc import CscProvider, CscSettings
from signer.remote.smartca import SmartCaProvider, SmartCaSettings

__all__ = [
    "Approval",
    "BatchMismatch",
    "CscProvider",
    "CscSettings",
    "ProviderRefused",
    "ProviderUnavailable",
    "RemoteCredential",
    "RemoteError",
    "RemoteProvider",
    "SmartCaProvider",
    "SmartCaSettings",
    "Transaction",
    "check_batch",
]
