"""The checked-in stubs are exactly what scripts/gen_protos.py makes from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_the_protos(tmp_path: Path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)], check=True
    )
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "kyso" / "v1").iterdir())
    checked_in = sorted(
        p.relative_to(ROOT)
        for p in (ROOT / "kyso" / "v1").iterdir()
        if p.name != "__init__.py" and p.suffix in {".py", ".pyi", ".binpb"}
    )
    assert generated == checked_in, "run `make protos` and commit the stubs"
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (ROOT / rel).read_bytes(), (
            f"{rel} drifted from protos/: run `make protos` and commit the stubs"
        )
