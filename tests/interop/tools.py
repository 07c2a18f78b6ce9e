"""Independent PDF signing tools, driven as a user would drive them, under the interop PKI.

- poppler's ``pdfsig`` with an NSS database holding the ``rsa`` signer (pk12util);
- iText 5 and PDFBox 2 through the small Java programs in ``java/``, compiled once per session;
- endesive, in this process (it appends its update to the bytes it is given);
- ``@signpdf/signpdf`` with node, from the project-local ``node/`` folder (package.json and
  lockfile; ``scripts/bootstrap.sh test`` runs ``npm ci`` there).

Every method takes a PDF's bytes and returns the new bytes; a tool that fails raises
:class:`ToolFailed` with its own output, so a broken corpus is never mistaken for a verdict.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import endesive

from tests.interop.pki import P12_PASSWORD, InteropPki

__all__ = ["CLASSPATH", "ToolFailed", "Tools", "missing_tools"]

_JARS = (
    "itext5.jar",
    "pdfbox2.jar",
    "fontbox2.jar",
    "commons-logging.jar",
    "bcprov.jar",
    "bcpkix.jar",
    "bcutil.jar",
)
CLASSPATH = ":".join(f"/usr/share/java/{jar}" for jar in _JARS)
_JAVA_SOURCES = Path(__file__).parent / "java"
_NODE_DIR = Path(__file__).parent / "node"
_TIMEOUT = 120


@cache
def _endesive_cms() -> ModuleType:
    """endesive's PDF signer, imported without running ``endesive/pdf/__init__``: that imports
    endesive's verifier, whose oscrypto cannot detect this machine's OpenSSL 3 (an import
    error). The package is registered bare, so its submodules (cms, the appearance code) load."""
    if "endesive.pdf" not in sys.modules:
        package = ModuleType("endesive.pdf")
        package.__path__ = [str(Path(endesive.__file__).parent / "pdf")]
        sys.modules["endesive.pdf"] = package
    return importlib.import_module("endesive.pdf.cms")


class ToolFailed(Exception):
    """A signing tool exited with an error (its output is the message)."""


def missing_tools() -> list[str]:
    """What this machine lacks to build the corpus (scripts/bootstrap.sh test installs it)."""
    missing = [
        tool
        for tool in ("pdfsig", "certutil", "pk12util", "java", "javac")
        if not shutil.which(tool)
    ]
    missing += [jar for jar in _JARS if not Path("/usr/share/java", jar).exists()]
    if not (_NODE_DIR / "node_modules" / "@signpdf" / "signpdf").is_dir():
        missing.append("tests/interop/node/node_modules (npm ci)")
    if not shutil.which("node"):
        missing.append("node")
    return missing


def _run(args: list[str], *, cwd: Path | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise ToolFailed(f"{' '.join(args[:3])}… exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


class Tools:
    """The tools, set up under ``home`` (NSS database, compiled Java classes, scratch files)."""

    def __init__(self, home: Path, pki: InteropPki) -> None:
        self.home = home
        self.pki = pki
        self.classes = home / "classes"
        self.classes.mkdir(parents=True)
        _run(
            [
                "javac",
                "-nowarn",
                "-cp",
                CLASSPATH,
                "-d",
                str(self.classes),
                *(str(p) for p in sorted(_JAVA_SOURCES.glob("*.java"))),
            ]
        )
        self.nss = home / "nss"
        self.nss.mkdir()
        _run(["certutil", "-N", "-d", f"sql:{self.nss}", "--empty-password"])
        _run(
            [
                "pk12util",
                "-i",
                str(pki["rsa"].p12),
                "-d",
                f"sql:{self.nss}",
                "-W",
                P12_PASSWORD,
                "-K",
                "",
            ]
        )
        self._serial = 0
        self._server: subprocess.Popen[str] | None = None

    def _files(self, data: bytes) -> tuple[Path, Path]:
        self._serial += 1
        source = self.home / f"in-{self._serial}.pdf"
        source.write_bytes(data)
        return source, self.home / f"out-{self._serial}.pdf"

    def _java(self, program: str, *args: str) -> str:
        """Run ``program`` (ITextTool, PdfBoxTool) in the session's one JVM (ToolServer)."""
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [
                    "java",
                    "-XX:TieredStopAtLevel=1",
                    "-XX:+UseSerialGC",
                    "-cp",
                    f"{self.classes}:{CLASSPATH}",
                    "ToolServer",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        server = self._server
        assert server.stdin is not None
        assert server.stdout is not None
        if any("\t" in a or "\n" in a for a in args):
            raise ValueError("tool arguments cannot hold tabs or newlines")
        server.stdin.write("\t".join((program, *args)) + "\n")
        server.stdin.flush()
        status = server.stdout.readline()
        if not status:
            raise ToolFailed(f"the Java tool server ended (exit {server.wait(timeout=10)})")
        if status.startswith("ERR "):
            raise ToolFailed(f"{program} {args[0]}: {status[4:].strip()}")
        count = int(status.split()[1])
        return "".join(server.stdout.readline() for _ in range(count))

    def close(self) -> None:
        """Stop the Java tool server (it ends when its input closes)."""
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)
            self._server = None

    # -- iText 5 ---------------------------------------------------------------------------------

    def itext_base(self) -> bytes:
        """A page of text, a text field ``hoten``, an empty visible signature field ``Approval``."""
        self._serial += 1
        out = self.home / f"base-{self._serial}.pdf"
        self._java("ITextTool", "base", str(out))
        return out.read_bytes()

    def itext_sign(self, data: bytes, signer: str, field: str, *options: str) -> bytes:
        """Options: ``cades``, ``certify=N``, ``rect=x1,y1,x2,y2``, ``existing``, ``crl``."""
        source, out = self._files(data)
        opts = [f"crl={self.pki.crl_der}" if o == "crl" else o for o in options]
        self._java(
            "ITextTool",
            "sign",
            str(source),
            str(out),
            str(self.pki[signer].p12),
            P12_PASSWORD,
            field,
            *opts,
        )
        return out.read_bytes()

    def itext_fill(self, data: bytes, field: str, value: str) -> bytes:
        source, out = self._files(data)
        self._java("ITextTool", "fill", str(source), str(out), field, value)
        return out.read_bytes()

    def itext_overlay(self, data: bytes) -> bytes:
        source, out = self._files(data)
        self._java("ITextTool", "overlay", str(source), str(out))
        return out.read_bytes()

    def itext_annotate(self, data: bytes) -> bytes:
        source, out = self._files(data)
        self._java("ITextTool", "annotate", str(source), str(out))
        return out.read_bytes()

    def itext_verify(self, data: bytes, root_pem: Path) -> list[str]:
        source, _ = self._files(data)
        return self._java("ITextTool", "verify", str(source), str(root_pem)).splitlines()

    # -- PDFBox 2 --------------------------------------------------------------------------------

    def pdfbox_sign(self, data: bytes, signer: str, field: str, *options: str) -> bytes:
        """Options: ``cades``, ``nosigcert``, ``certify=N``, ``existing``, ``crl``."""
        source, out = self._files(data)
        options = tuple(f"crl={self.pki.crl_der}" if o == "crl" else o for o in options)
        self._java(
            "PdfBoxTool",
            "sign",
            str(source),
            str(out),
            str(self.pki[signer].p12),
            P12_PASSWORD,
            field,
            *options,
        )
        return out.read_bytes()

    def pdfbox_verify(self, data: bytes, root_pem: Path) -> list[str]:
        source, _ = self._files(data)
        return self._java("PdfBoxTool", "verify", str(source), str(root_pem)).splitlines()

    # -- poppler ---------------------------------------------------------------------------------

    def pdfsig_sign(self, data: bytes, *, field: str, existing: bool = False) -> bytes:
        """``pdfsig -add-signature`` (a new field) or ``pdfsig -sign FIELD`` with the rsa key."""
        source, out = self._files(data)
        where = (
            ["-sign", field] if existing else ["-add-signature", "-new-signature-field-name", field]
        )
        _run(
            [
                "pdfsig",
                "-nssdir",
                f"sql:{self.nss}",
                *where,
                "-nick",
                "rsa",
                "-reason",
                "Ky duyet van ban",
                str(source),
                str(out),
            ]
        )
        if not out.exists():
            raise ToolFailed("pdfsig wrote no output")
        return out.read_bytes()

    # -- @signpdf/signpdf ------------------------------------------------------------------------

    def signpdf_sign(self, data: bytes, signer: str, *, cades: bool = False) -> bytes:
        """``@signpdf/signpdf`` 3 (node-forge: RSA keys only), a new invisible field."""
        source, out = self._files(data)
        _run(
            [
                "node",
                str(_NODE_DIR / "sign.js"),
                str(source),
                str(out),
                str(self.pki[signer].p12),
                P12_PASSWORD,
                *(["cades"] if cades else []),
            ]
        )
        return out.read_bytes()

    # -- endesive --------------------------------------------------------------------------------

    def endesive_sign(
        self,
        data: bytes,
        signer: str,
        field: str,
        *,
        box: tuple[int, int, int, int] | None = None,
        certify: bool = False,
    ) -> bytes:
        entry = self.pki[signer]
        udct: dict[str, object] = {
            "sigflags": 3,
            "sigfield": field,
            "auto_sigfield": True,
            "contact": "interop@example.vn",
            "location": "Ha Long",
            "reason": "Ky duyet van ban",
            "signingdate": dt.datetime.now(dt.UTC).strftime("D:%Y%m%d%H%M%S+00'00'"),
            "sigandcertify": certify,
        }
        if box is not None:
            udct["signaturebox"] = box
            udct["signature"] = "Interop signer (endesive)"
        appended = _endesive_cms().sign(
            data, udct, entry.key, entry.cert, [self.pki.root], "sha256"
        )
        return data + appended
