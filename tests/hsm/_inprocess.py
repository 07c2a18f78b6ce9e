"""Run the in-process hsm APIs in a child interpreter and print what they return, as JSON.

Why a child: a process that loads SoftHSM never sees tokens created after that by other
processes, and the test process must stay free to see every fixture's token.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from hsm import (
    KeyNotFound,
    PinIncorrect,
    PinSource,
    Pkcs11Uri,
    list_keys,
    list_mechanisms,
    list_tokens,
    open_token_key,
    test_sign,
)


def main() -> None:
    request = json.loads(sys.stdin.read())
    module, label = request["module"], request["token"]
    os.environ["INPROC_PIN"] = request["pin"]
    pin = PinSource.from_env("INPROC_PIN")
    out: dict[str, object] = {}
    out["tokens"] = [t.label for t in list_tokens(module)]
    token_uri = Pkcs11Uri(token=label)
    out["public_keys"] = sorted(
        (k.label, k.has_certificate) for k in list_keys(module, token=token_uri)
    )
    out["private_keys"] = sorted(
        (k.label, k.key_type, k.size, k.sensitive, k.extractable)
        for k in list_keys(module, token=token_uri, pin=pin)
    )
    out["mechanisms"] = [m.name for m in list_mechanisms(module, token=token_uri)]
    result = test_sign(Pkcs11Uri(token=label, object="rsa2048"), pin=pin, module_path=module)
    out["test_sign"] = [result.mechanism, result.key.algorithm, result.seconds > 0]
    result = test_sign(Pkcs11Uri(token=label, object="p256"), pin=pin, module_path=module)
    out["test_sign_ec"] = result.mechanism
    try:
        test_sign(Pkcs11Uri(token=label, object="missing"), pin=pin, module_path=module)
    except KeyNotFound as exc:
        out["missing"] = type(exc).__name__
    with open_token_key(module, label, "p384") as key:
        out["local_certificate"] = key.certificate.dump().hex()
        try:
            key.login("wrong-pin")
        except PinIncorrect as exc:
            out["wrong_pin"] = str(exc)
        key.login(request["pin"])
        digests = [hashlib.sha384(f"doc {i}".encode()).digest() for i in range(3)]
        out["local_signatures"] = [[d.hex(), key.sign_digest(d, "sha384").hex()] for d in digests]
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
