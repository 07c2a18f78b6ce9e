"""A child process that signs digests on SoftHSM tokens for the tests (JSON lines on stdio).

Why a child: a process that loads SoftHSM never sees tokens created after that, so the test
process itself never loads the module (see tests/hsm/_inprocess.py).

Request: {"module", "token", "key", "pin_path", "digest" (hex), "algorithm"}
Answer:  {"value": hex} or {"error": "<class>: <message>"}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hsm import HsmError, LocalKey, open_token_key


def main() -> None:
    keys: dict[tuple[str, str, str], LocalKey] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            where = (request["module"], request["token"], request["key"])
            key = keys.get(where)
            if key is None:
                key = open_token_key(*where)
                key.login(Path(request["pin_path"]).read_text().strip())
                keys[where] = key
            value = key.sign_digest(bytes.fromhex(request["digest"]), request["algorithm"])
            answer = {"value": value.hex()}
        except HsmError as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
