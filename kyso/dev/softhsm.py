"""Provision SoftHSM2 development and test tokens: tokens, key pairs and certificates.

Everything here is for development and tests; production keys are made by the HSM's own tools.

Why each operation runs in a child process:
- SoftHSM2 reads its token directory (``SOFTHSM2_CONF``) once, at ``C_Initialize``, and a process
  that already loaded the module does not see tokens that other processes create later. Running
  the PKCS#11 work in a short-lived child leaves the caller's own view of the module untouched
  (a signing service's parent process never loads the module at all).
- PINs travel to the child on its standard input, never in ``argv`` (``softhsm2-util`` only
  takes them as arguments or from a terminal prompt), so they never show in ``ps``.

Invariants of what is created:
- private keys are generated ON the token, ``CKA_SENSITIVE=true``, ``CKA_EXTRACTABLE=false``
  (unless the caller asks for an exportable key, to test the signing service's policy refusal);
- every operation is idempotent by label: a token or key that already exists is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from kyso.errors import KysoError

__all__ = [
    "SOFTHSM_MODULE",
    "KeyKind",
    "SoftHsmError",
    "generate_keypair",
    "init_token",
    "softhsm_conf",
    "store_certificate",
]

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
"""Where Debian's softhsm2 package installs the PKCS#11 module."""

KeyKind = Literal["rsa2048", "rsa3072", "p256", "p384"]

_CHILD_TIMEOUT_S = 120.0


class SoftHsmError(KysoError):
    """Provisioning a development token failed; the message says which step and why."""


def softhsm_conf(home: Path) -> Path:
    """Write ``home/softhsm2.conf`` (token directory ``home/tokens``, file backend); return it.

    Point ``SOFTHSM2_CONF`` at the returned path before any process loads the module.
    """
    tokens = home / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = home / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return conf


def init_token(
    *,
    label: str,
    so_pin: str,
    user_pin: str,
    env: Mapping[str, str] | None = None,
    module_path: str = SOFTHSM_MODULE,
) -> None:
    """Initialise the first free slot as a token named ``label`` with the given PINs.

    Idempotent: if a token with ``label`` exists it is left as it is (its PINs are not checked).
    ``env`` is the child's environment (for ``SOFTHSM2_CONF``); default: this process's.
    """
    _run_child(
        {
            "op": "init_token",
            "module": module_path,
            "label": label,
            "so_pin": so_pin,
            "user_pin": user_pin,
        },
        env,
    )


def generate_keypair(
    *,
    module_path: str,
    token_label: str,
    user_pin: str,
    label: str,
    key_id: bytes,
    kind: KeyKind,
    exportable: bool = False,
    always_authenticate: bool = False,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Generate a signing key pair on the token; return its public key as DER SubjectPublicKeyInfo.

    The private key is sensitive and non-extractable unless ``exportable`` (test of the signing
    policy only); ``always_authenticate`` sets ``CKA_ALWAYS_AUTHENTICATE`` (PIN per signature).
    Idempotent: if a private key labelled ``label`` exists, nothing is generated and the SPKI of
    the existing key pair is returned.
    """
    result = _run_child(
        {
            "op": "generate_keypair",
            "module": module_path,
            "token": token_label,
            "user_pin": user_pin,
            "label": label,
            "id": key_id.hex(),
            "kind": kind,
            "exportable": exportable,
            "always_authenticate": always_authenticate,
        },
        env,
    )
    return bytes.fromhex(str(result["spki"]))


def store_certificate(
    *,
    module_path: str,
    token_label: str,
    user_pin: str,
    label: str,
    key_id: bytes,
    certificate_der: bytes,
    env: Mapping[str, str] | None = None,
) -> None:
    """Write the X.509 certificate object ``label`` (with ``CKA_ID`` ``key_id``), replacing any.

    Give it the label and id of its key: that is how the signing service pairs them.
    """
    _run_child(
        {
            "op": "store_certificate",
            "module": module_path,
            "token": token_label,
            "user_pin": user_pin,
            "label": label,
            "id": key_id.hex(),
            "certificate": certificate_der.hex(),
        },
        env,
    )


def _run_child(request: dict[str, Any], env: Mapping[str, str] | None) -> dict[str, Any]:
    """Run one request in a fresh interpreter executing this file; PINs go through stdin."""
    try:
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve())],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=dict(os.environ if env is None else env),
            timeout=_CHILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SoftHsmError(f"could not run the token provisioning helper: {exc}") from exc
    try:
        reply: dict[str, Any] = json.loads(completed.stdout)
    except ValueError:
        # The child died before answering (e.g. the module crashed): stderr is the only clue.
        # It never contains PINs: they are only ever on the child's stdin.
        raise SoftHsmError(
            f"{request['op']} failed (helper exit code {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        ) from None
    if "error" in reply:
        raise SoftHsmError(f"{request['op']}: {reply['error']}")
    return reply


# --------------------------------------------------------------------------------------------
# Child side: everything below runs only in the helper process (``python softhsm.py``).
# --------------------------------------------------------------------------------------------


def _child_main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        reply = _CHILD_OPS[request["op"]](request)
    except _ChildError as exc:
        reply = {"error": str(exc)}
    except Exception as exc:  # the parent turns any failure into one SoftHsmError
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(reply))
    return 0


class _ChildError(Exception):
    pass


def _child_init_token(request: dict[str, Any]) -> dict[str, Any]:
    import ctypes

    import pkcs11
    from pkcs11.constants import TokenFlag

    lib = pkcs11.lib(request["module"])
    label: str = request["label"]
    free_slot = None
    for slot in lib.get_slots(token_present=True):
        token = slot.get_token()
        if token.flags & TokenFlag.TOKEN_INITIALIZED:
            if token.label == label:
                return {}
        elif free_slot is None:
            free_slot = slot
    if free_slot is None:
        raise _ChildError("no free slot on the module to initialise a token in")
    label_bytes = label.encode("utf-8")
    if len(label_bytes) > 32:
        raise _ChildError(f"token label {label!r} is longer than 32 bytes")
    so_pin = request["so_pin"].encode("utf-8")
    # python-pkcs11 has no C_InitToken; the module is already initialised by pkcs11.lib above,
    # and ctypes opens the same shared object (dlopen returns the loaded handle).
    module = ctypes.CDLL(request["module"])
    module.C_InitToken.argtypes = [
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    module.C_InitToken.restype = ctypes.c_ulong
    rv = module.C_InitToken(free_slot.slot_id, so_pin, len(so_pin), label_bytes.ljust(32, b" "))
    if rv != 0:
        raise _ChildError(f"C_InitToken returned CKR 0x{rv:08x}")
    token = lib.get_token(token_label=label)
    with token.open(rw=True, so_pin=request["so_pin"]) as session:
        session.init_pin(request["user_pin"])
    return {}


def _child_generate_keypair(request: dict[str, Any]) -> dict[str, Any]:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    token = pkcs11.lib(request["module"]).get_token(token_label=request["token"])
    label: str = request["label"]
    key_id = bytes.fromhex(request["id"])
    with token.open(rw=True, user_pin=request["user_pin"]) as session:
        existing = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
        )
        if not existing:
            exportable = bool(request["exportable"])
            private_template = {
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: not exportable,
                Attribute.EXTRACTABLE: exportable,
                Attribute.ALWAYS_AUTHENTICATE: bool(request["always_authenticate"]),
            }
            public_template = {
                Attribute.VERIFY: True,
                Attribute.ENCRYPT: False,
                Attribute.WRAP: False,
                Attribute.DERIVE: False,
            }
            kind: str = request["kind"]
            common: dict[str, Any] = {
                "id": key_id,
                "label": label,
                "store": True,
                "public_template": public_template,
                "private_template": private_template,
            }
            if kind.startswith("rsa"):
                session.generate_keypair(KeyType.RSA, int(kind[3:]), **common)
            else:
                curve = {"p256": "secp256r1", "p384": "secp384r1"}[kind]
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
                    local=True,
                )
                params.generate_keypair(**common)
        public = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
        )
        if len(public) != 1:
            raise _ChildError(
                f"expected one public key labelled {label!r} beside the private key, "
                f"found {len(public)}"
            )
        return {"spki": _spki_of(public[0]).hex()}


def _spki_of(public_key: Any) -> bytes:
    from asn1crypto import keys
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_ec_public_key

    if public_key.key_type == KeyType.EC:
        return bytes(encode_ec_public_key(public_key))
    rsa = keys.RSAPublicKey(
        {
            "modulus": int.from_bytes(public_key[Attribute.MODULUS], "big"),
            "public_exponent": int.from_bytes(public_key[Attribute.PUBLIC_EXPONENT], "big"),
        }
    )
    info = keys.PublicKeyInfo({"algorithm": {"algorithm": "rsa"}, "public_key": rsa})
    return bytes(info.dump())


def _child_store_certificate(request: dict[str, Any]) -> dict[str, Any]:
    import pkcs11
    from asn1crypto import x509
    from pkcs11 import Attribute, CertificateType, ObjectClass

    token = pkcs11.lib(request["module"]).get_token(token_label=request["token"])
    der = bytes.fromhex(request["certificate"])
    cert = x509.Certificate.load(der)
    label: str = request["label"]
    with token.open(rw=True, user_pin=request["user_pin"]) as session:
        for old in list(
            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label})
        ):
            old.destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: label,
                Attribute.ID: bytes.fromhex(request["id"]),
                Attribute.SUBJECT: cert.subject.dump(),
                Attribute.ISSUER: cert.issuer.dump(),
                Attribute.SERIAL_NUMBER: cert["tbs_certificate"]["serial_number"].dump(),
                Attribute.VALUE: der,
            }
        )
    return {}


_CHILD_OPS = {
    "init_token": _child_init_token,
    "generate_keypair": _child_generate_keypair,
    "store_certificate": _child_store_certificate,
}


if __name__ == "__main__":
    sys.exit(_child_main())
