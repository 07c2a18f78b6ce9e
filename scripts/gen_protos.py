"""Generate the Python stubs in kyso/v1/ from protos/kyso/v1/*.proto.

The one command that writes kyso/v1/*_pb2*.py(i): `python scripts/gen_protos.py [OUT_DIR]`.
It also writes kyso/v1/descriptors.binpb: the files' descriptors *with their comments*
(`--include_source_info`) and their imports, which reflection serves (``kyso.reflection``).
The test suite runs it into a temporary directory and fails when the checked-in stubs differ
(tests/kyso/test_protos.py), so the stubs can never drift from the contract.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out_dir: Path) -> None:
    """Write the stubs for every .proto under protos/kyso/v1 into ``out_dir`` (a tree root)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "kyso" / "v1").glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--descriptor_set_out={out_dir / 'kyso' / 'v1' / 'descriptors.binpb'}",
        "--include_source_info",
        "--include_imports",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
