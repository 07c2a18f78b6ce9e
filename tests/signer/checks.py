"""Independent checks of signed PDFs: pyHanko's validator (bottom line) and poppler's pdfsig."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko_certvalidator import ValidationContext

from signer import Level


async def validate(pdf: bytes, root, *, level: Level) -> list[Any]:
    """Validate every signature; assert the bottom line and the PAdES level reached."""
    reader = PdfFileReader(io.BytesIO(pdf))
    statuses = []
    offline = level in (Level.B_LT, Level.B_LTA)
    for sig in reader.embedded_regular_signatures:
        if offline:
            # Only what the document carries (DSS): proves the revocation data is embedded.
            context = DocumentSecurityStore.read_dss(reader).as_validation_context(
                {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
            )
        else:
            context = ValidationContext(trust_roots=[root])
        status = await async_validate_pdf_signature(sig, context)
        assert status.bottom_line, status.pretty_print_details()  # type: ignore[no-untyped-call]
        assert status.intact
        assert status.valid
        assert status.trusted
        if level is not Level.B_B:
            assert status.timestamp_validity is not None
            assert status.timestamp_validity.intact
            assert status.timestamp_validity.trusted
        else:
            assert status.timestamp_validity is None
        statuses.append(status)
    timestamps = reader.embedded_timestamp_signatures
    if level is Level.B_LTA:
        assert len(timestamps) == 1
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(
            {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
        )
        ts_status = await async_validate_pdf_timestamp(timestamps[0], context)
        assert ts_status.valid
        assert ts_status.intact
        assert ts_status.trusted
    else:
        assert not timestamps
    return statuses


def nss_db(directory: Path, root_pem: Path) -> Path:
    """A fresh NSS database trusting only the development root."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{directory}",
            "-n",
            "kyso-dev-root",
            "-t",
            "CT,C,C",
            "-i",
            str(root_pem),
        ],
        check=True,
    )
    return directory


def pdfsig(pdf_path: Path, nss: Path) -> list[dict[str, str]]:
    """pdfsig's report, one dict per signature (field → value)."""
    done = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nss}", str(pdf_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    signatures: list[dict[str, str]] = []
    for line in done.stdout.splitlines():
        if line.startswith("Signature #"):
            signatures.append({})
        elif line.strip().startswith("- ") and ":" in line and signatures:
            key, _, value = line.strip()[2:].partition(":")
            signatures[-1][key.strip()] = value.strip()
    return signatures
