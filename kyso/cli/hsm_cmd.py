"""``kyso hsm list | keys | test-sign``: what an operator checks on a PKCS#11 device.

The module comes from ``--module``, else the configuration's ``[hsm] module`` (whose
``[hsm.environment]`` is applied, e.g. SoftHSM's configuration path). PINs come from
``--pin-file``, the ``KYSO_TOKEN_PIN`` environment variable, a prompt (``--login``), or, for a
configured key alias, the key's own PIN source — never from the command line.
"""

from __future__ import annotations

import argparse
import os

import hsm
from kyso.cli.common import die, load_or_exit, resolve_config_path
from kyso.config import Config

__all__ = ["register"]

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("hsm", help="inspect PKCS#11 modules, tokens and keys")
    sub = parser.add_subparsers(dest="hsm_command", required=True)

    tokens = sub.add_parser("list", help="tokens on the module (label, serial, maker, model)")
    _common(tokens)
    tokens.add_argument(
        "--mechanisms", action="store_true", help="also list each token's mechanisms"
    )
    tokens.set_defaults(func=_list)

    keys = sub.add_parser("keys", help="keys on a token (public ones without a PIN)")
    _common(keys)
    keys.add_argument("--token", help="token label (default: every token)")
    _pin_arguments(keys)
    keys.set_defaults(func=_keys)

    probe = sub.add_parser("test-sign", help="sign and verify a probe; print mechanism and time")
    probe.add_argument(
        "key", help="an RFC 7512 URI (pkcs11:token=…;object=…) or a configured alias"
    )
    _common(probe)
    _pin_arguments(probe)
    probe.set_defaults(func=_test_sign)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", help="the PKCS#11 library (default: from the config)")
    parser.add_argument("--config", help="configuration file (default: $KYSO_CONFIG or ./var/dev)")


def _pin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pin-file", help="a file holding the user PIN")
    parser.add_argument("--login", action="store_true", help="prompt for the user PIN")


def _config(args: argparse.Namespace) -> Config | None:
    path = resolve_config_path(args.config)
    if not args.config and not path.exists():
        return None
    config = load_or_exit(path)
    os.environ.update(config.hsm.environment)
    return config


def _module(args: argparse.Namespace, config: Config | None) -> str:
    return str(args.module or (config.hsm.module if config else DEFAULT_MODULE))


def _pin(args: argparse.Namespace) -> hsm.PinSource | None:
    if args.pin_file:
        return hsm.PinSource.from_file(args.pin_file)
    if os.environ.get("KYSO_TOKEN_PIN"):
        return hsm.PinSource.from_env("KYSO_TOKEN_PIN")
    if args.login:
        return hsm.PinSource.prompt("user PIN: ")
    return None


def _list(args: argparse.Namespace) -> int:
    config = _config(args)
    module = _module(args, config)
    try:
        tokens = hsm.list_tokens(module)
        print(f"module {module}: {len(tokens)} token(s)")
        for token in tokens:
            print(
                f"  {token.label!r} serial {token.serial} — {token.manufacturer} {token.model}"
                f" [{', '.join(token.flags)}]"
            )
            print(f"    {token.uri}")
            if args.mechanisms:
                for mech in hsm.list_mechanisms(module, token=token.uri):
                    print(
                        f"      {mech.name} ({mech.min_key_size}-{mech.max_key_size} bits)"
                        f" [{', '.join(mech.flags)}]"
                    )
    except hsm.HsmError as exc:
        die(str(exc))
    return 0


def _keys(args: argparse.Namespace) -> int:
    config = _config(args)
    module = _module(args, config)
    token = hsm.Pkcs11Uri(token=args.token) if args.token else None
    try:
        keys = hsm.list_keys(module, token=token, pin=_pin(args))
    except hsm.HsmError as exc:
        die(str(exc))
    for key in keys:
        size = f"{key.size}-bit " if key.size else ""
        facts = [
            "certificate" if key.has_certificate else "NO certificate",
            *(["sensitive"] if key.sensitive else []),
            *(["EXTRACTABLE"] if key.extractable else []),
            *(["PIN per signature"] if key.always_authenticate else []),
        ]
        print(f"{key.token_label}: {key.object_class} {size}{key.key_type} {key.label!r}")
        print(f"    {key.uri}  [{', '.join(facts)}]")
    if not keys:
        print(
            "no keys found" + ("" if args.pin_file or args.login else " (private keys need a PIN)")
        )
    return 0


def _test_sign(args: argparse.Namespace) -> int:
    config = _config(args)
    pin = _pin(args)
    module = args.module
    if args.key.startswith("pkcs11:"):
        try:
            uri = hsm.Pkcs11Uri.parse(args.key)
        except hsm.InvalidUri as exc:
            die(str(exc))
    else:
        if config is None or args.key not in config.keys:
            die(f"{args.key!r} is neither a pkcs11: URI nor a configured key alias")
        key = config.keys[args.key]
        uri = hsm.Pkcs11Uri.parse(key.uri)
        module = module or key.module or config.hsm.module
        if pin is None:
            pin = (
                hsm.PinSource.from_file(key.pin_file)
                if key.pin_file
                else hsm.PinSource.from_env(key.pin_env)
            )
    if pin is None:
        die("no PIN: use --pin-file FILE, KYSO_TOKEN_PIN, or --login to be prompted")
    try:
        result = hsm.test_sign(uri, pin=pin, module_path=module or _module(args, config))
    except hsm.HsmError as exc:
        die(str(exc))
    info = result.key
    print(f"{uri}: signed and verified a probe")
    print(f"  key          {info.key_type} {info.size} bits {info.curve or ''}".rstrip())
    print(f"  mechanism    {result.mechanism}")
    print(f"  time         {result.seconds * 1000:.2f} ms")
    print(f"  certificate  {result.certificate_subject}")
    return 0
