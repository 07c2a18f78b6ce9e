"""What the caller configures (``KeySpec``) and what the token reports about a key (``KeyInfo``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hsm.errors import InvalidUri
from hsm.pin import PinSource
from hsm.schemes import KeyType
from hsm.uri import Pkcs11Uri

__all__ = ["KeyInfo", "KeySpec"]


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """One configured signing key: ``alias`` → RFC 7512 ``uri`` on the module at ``module_path``.

    ``uri`` must name a private key by ``object=`` and/or ``id=``. ``module_path`` defaults to
    the URI's ``module-path``. ``chain_files`` are the issuer certificates (PEM or DER, nearest
    issuer first); without them the chain is read from the token. ``certificate_file`` replaces
    the certificate stored on the token beside the key. ``allow_exportable`` lets a key that is
    extractable or not sensitive sign (development only).
    """

    alias: str
    uri: Pkcs11Uri
    pin: PinSource
    module_path: str = ""
    chain_files: tuple[Path, ...] = ()
    certificate_file: Path | None = None
    allow_exportable: bool = False

    def __post_init__(self) -> None:
        uri = self.uri
        if uri.type not in (None, "private"):
            raise InvalidUri(
                f"key {self.alias!r}: the URI must name a private key (type=private), "
                f"not type={uri.type}"
            )
        if uri.object is None and uri.id is None:
            raise InvalidUri(f"key {self.alias!r}: the URI must name the key by object= or id=")
        if not self.module_path:
            if not uri.module_path:
                raise InvalidUri(
                    f"key {self.alias!r}: no module path (set module_path or the URI's"
                    " ?module-path=)"
                )
            object.__setattr__(self, "module_path", uri.module_path)
        object.__setattr__(self, "chain_files", tuple(Path(p) for p in self.chain_files))


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """Facts about a private key as the token reports them."""

    label: str
    id: bytes
    key_type: KeyType
    size: int
    """Modulus bits (RSA) or field bits (EC)."""
    curve: str | None
    """Named curve (``secp256r1``, ``secp384r1``) for EC keys."""
    sensitive: bool
    extractable: bool
    always_authenticate: bool
    token_label: str
    token_serial: str
    mechanisms: frozenset[int] = field(default=frozenset(), repr=False)
    """Signing mechanisms the token offers (CKM_ numbers)."""

    @property
    def algorithm(self) -> str:
        """``RSA-2048``, ``EC-P256``, … for people."""
        if self.key_type == "rsa":
            return f"RSA-{self.size}"
        return f"EC-P{self.size}"

    @property
    def exportable(self) -> bool:
        return self.extractable or not self.sensitive

    @property
    def uri(self) -> Pkcs11Uri:
        """A URI that names exactly this key."""
        return Pkcs11Uri(
            token=self.token_label,
            serial=self.token_serial or None,
            object=self.label,
            id=self.id or None,
            type="private",
        )
