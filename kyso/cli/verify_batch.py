"""``kyso verify`` over many files: collect, verify through the worker pool, report, summarise.

Each file is read by one of ``2 × workers`` threads and verified by :class:`signer.verify.Verifier`
(one process per core): at most that many documents are in memory at once, whatever the number of
files. Results are printed in the order the files were collected (sorted within each folder), as
soon as every earlier one is done; the progress bar (stderr, terminals only) counts completions.

Outcome of a file, worst first: failed (TOTAL-FAILED on a readable PDF, exit 1), unreadable (not
a PDF, unparseable, or the file cannot be read; exit 3), indeterminate (exit 2), passed (exit 0).
A document proven altered is the worst news for an auditor, so it outranks one that could not be
judged.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from signer.verify import (
    Indication,
    VerificationPolicy,
    VerificationReport,
    Verifier,
    render_text,
    report_to_dict,
)
from signer.verify.engine import limit_report, unreadable_report
from signer.verify.text import INDICATION_TEXT, Language

__all__ = ["Batch", "Outcome", "collect", "outcome_of"]


class Outcome(enum.Enum):
    """A file's result for the summary, with its exit code and its rank (higher is worse)."""

    PASSED = "passed"
    INDETERMINATE = "indeterminate"
    UNREADABLE = "unreadable"
    FAILED = "failed"

    @property
    def exit_code(self) -> int:
        return _EXIT[self]

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = (Outcome.PASSED, Outcome.INDETERMINATE, Outcome.UNREADABLE, Outcome.FAILED)
_EXIT = {Outcome.PASSED: 0, Outcome.FAILED: 1, Outcome.INDETERMINATE: 2, Outcome.UNREADABLE: 3}

_SUMMARY: Mapping[str, Mapping[Language, str]] = {
    "title": {"vi": "TỔNG HỢP KẾT QUẢ KIỂM TRA", "en": "VERIFICATION SUMMARY"},
    Outcome.PASSED.value: {"vi": "Hợp lệ (TOTAL-PASSED)", "en": "Passed (TOTAL-PASSED)"},
    Outcome.FAILED.value: {
        "vi": "Không hợp lệ (TOTAL-FAILED)",
        "en": "Failed (TOTAL-FAILED)",
    },
    Outcome.INDETERMINATE.value: {
        "vi": "Chưa xác định được (INDETERMINATE)",
        "en": "Indeterminate (INDETERMINATE)",
    },
    Outcome.UNREADABLE.value: {"vi": "Không đọc được", "en": "Unreadable"},
    "total": {"vi": "Tổng số tệp", "en": "Total files"},
    "files": {"vi": "tệp", "en": "files"},
    "per_second": {"vi": "tệp/giây", "en": "files/s"},
    "unreadable_line": {"vi": "KHÔNG ĐỌC ĐƯỢC", "en": "UNREADABLE"},
    "no_such": {"vi": "không có tệp hoặc thư mục này", "en": "no such file or folder"},
}


def outcome_of(report: VerificationReport) -> Outcome:
    if not report.readable:
        return Outcome.UNREADABLE
    return {
        Indication.TOTAL_PASSED: Outcome.PASSED,
        Indication.INDETERMINATE: Outcome.INDETERMINATE,
        Indication.TOTAL_FAILED: Outcome.FAILED,
    }[report.indication]


def collect(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """The files to verify and the paths that do not exist.

    A file named on the command line is taken whatever its name; a folder contributes every
    ``*.pdf`` (any case) below it, sorted, without following symbolic links to folders. A file
    reached twice is verified once.
    """
    files: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    if name.lower().endswith(".pdf") and (Path(root) / name).is_file():
                        add(Path(root) / name)
        elif path.exists():
            add(path)
        else:
            missing.append(path)
    return files, missing


class Batch:
    """Verifies files through a :class:`Verifier` and writes what ``kyso verify`` prints.

    ``detailed``: the full report for each file (one file given) instead of one line per file
    and a summary. ``json_lines``: one JSON report per line on stdout (the summary, unless
    ``detailed``, goes to stderr).
    """

    def __init__(
        self,
        policy: VerificationPolicy,
        *,
        lang: Language = "vi",
        json_lines: bool = False,
        detailed: bool = False,
        progress: bool = False,
        jobs: int | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self._policy = policy
        self._lang = lang
        self._json = json_lines
        self._detailed = detailed
        self._jobs = jobs
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._bar = _ProgressBar(self._err, lang) if progress else None

    def run(self, files: Sequence[Path], *, missing: Sequence[Path] = ()) -> int:
        """Verify ``files``; returns the exit code of the worst outcome (``missing`` paths count
        as unreadable)."""
        counts = dict.fromkeys(Outcome, 0)
        counts[Outcome.UNREADABLE] += len(missing)
        workers = max(1, min(self._jobs or os.cpu_count() or 1, len(files)))
        started = time.monotonic()
        if files:
            with (
                Verifier(workers=workers) as verifier,
                ThreadPoolExecutor(2 * workers, thread_name_prefix="kyso-verify") as threads,
            ):
                futures = [threads.submit(self._verify_file, verifier, path) for path in files]
                index = {future: i for i, future in enumerate(futures)}
                done: dict[int, VerificationReport] = {}
                next_out = 0
                if self._bar is not None:
                    self._bar.draw(0, len(files), started)
                for count, future in enumerate(as_completed(futures), start=1):
                    done[index[future]] = future.result()
                    while next_out in done:
                        report = done.pop(next_out)
                        counts[outcome_of(report)] += 1
                        self._emit(files[next_out], report)
                        next_out += 1
                    if self._bar is not None:
                        self._bar.draw(count, len(files), started)
                if self._bar is not None:
                    self._bar.clear()
        if not self._detailed:
            self._summary(counts, time.monotonic() - started)
        worst = max((o for o, n in counts.items() if n), key=lambda o: o.rank)
        return worst.exit_code

    def _verify_file(self, verifier: Verifier, path: Path) -> VerificationReport:
        limit = self._policy.limits.max_document_bytes
        try:
            size = path.stat().st_size
            if size > limit:
                return _oversized(path, size, self._policy)
            data = path.read_bytes()
        except OSError as exc:
            return unreadable_report(
                b"",
                policy=self._policy,
                code="UNREADABLE",
                detail=f"cannot read the file: {exc.strerror or type(exc).__name__}",
            )
        return verifier.verify(data, self._policy)

    def _emit(self, path: Path, report: VerificationReport) -> None:
        if self._bar is not None:
            self._bar.clear()
        if self._json:
            data = report_to_dict(report)
            line = json.dumps(
                {"schema": data.pop("schema"), "path": str(path), **data},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            print(line, file=self._out)
        elif self._detailed:
            print(render_text(report, lang=self._lang), end="", file=self._out)
        else:
            print(f"{self._verdict(report)}  {path}", file=self._out)
        self._out.flush()

    def _verdict(self, report: VerificationReport) -> str:
        if not report.readable:
            text = _SUMMARY["unreadable_line"][self._lang]
        else:
            text = INDICATION_TEXT[report.indication][self._lang]
        if report.sub_indication is not None:
            text += f" / {report.sub_indication.value}"
        return text

    def _summary(self, counts: Mapping[Outcome, int], seconds: float) -> None:
        label = {key: value[self._lang] for key, value in _SUMMARY.items()}
        rows = [(label[o.value], counts[o]) for o in _ORDER[::-1]]
        rows.append((label["total"], sum(counts.values())))
        width = max(len(name) for name, _ in rows)
        lines = ["", label["title"], "-" * len(label["title"])]
        for i, (name, number) in enumerate(rows):
            if i == len(rows) - 1:
                lines.append("-" * (width + 10))
            lines.append(f"{name:<{width}}  {number:>8}")
        total = sum(counts.values())
        if seconds > 0 and total:
            lines.append(f"({total / seconds:.1f} {label['per_second']}, {seconds:.1f} s)")
        stream = self._err if self._json else self._out
        print("\n".join(lines), file=stream)


def _oversized(path: Path, size: int, policy: VerificationPolicy) -> VerificationReport:
    """RESOURCE_LIMIT for a file above the size limit, without reading it whole into memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    limit = policy.limits.max_document_bytes
    report = limit_report(
        b"", policy=policy, detail=f"document of {size} bytes; the limit is {limit}"
    )
    return replace(report, document_sha256=digest.hexdigest(), document_size=size)


class _ProgressBar:
    """One line on a terminal: ``[####……] done/total  percent  rate``, redrawn in place."""

    _WIDTH = 30

    def __init__(self, stream: TextIO, lang: Language) -> None:
        self._stream = stream
        self._lang = lang
        self._shown = False

    def draw(self, done: int, total: int, started: float) -> None:
        filled = self._WIDTH * done // total if total else self._WIDTH
        elapsed = time.monotonic() - started
        rate = f"{done / elapsed:.1f} {_SUMMARY['per_second'][self._lang]}" if elapsed else ""
        bar = "█" * filled + "░" * (self._WIDTH - filled)
        percent = 100 * done // total if total else 100
        self._stream.write(f"\r\x1b[K[{bar}] {done}/{total} {percent:3d}%  {rate}")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
