"""``kyso verify PATH…`` over folders: recursion, one JSON line per file, the summary table, the
exit code of the worst result, and the progress bar on a terminal (a real pseudo-terminal)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from signer import Level
from tests.verify import attacks

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]


def kyso_verify(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "verify", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KYSO_CONFIG": "/nonexistent/kyso.toml"},
        timeout=300,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory, signed):
    """passed ×2 (one named .PDF, one deep), failed, indeterminate, unreadable, and a non-PDF."""
    root = tmp_path_factory.mktemp("batch")
    original = signed.get("seal", Level.B_LT)
    layout = {
        "a/passed.pdf": original,
        "a/deeper/still/PASSED-TOO.PDF": signed.get("seal-ec", Level.B_LT),
        "b/page-added.pdf": attacks.page_added(original),
        "b/b-b.pdf": signed.get("seal", Level.B_B),
        "c/garbage.pdf": attacks.garbage(),
        "c/notes.txt": b"not a PDF and not named like one",
    }
    for name, data in layout.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def trust(dev_env) -> tuple[str, str]:
    return ("--trust", str(dev_env.root_certificate_path))


def test_json_lines_for_every_pdf_in_order_and_the_worst_exit_code(folder, dev_env):
    done = kyso_verify(str(folder), "--json", "--jobs", "2", *trust(dev_env))
    assert done.returncode == 1, done.stderr  # a failed document is the worst result
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    found = {Path(line["path"]).relative_to(folder).as_posix(): line for line in lines}
    assert len(lines) == len(found) == 5  # notes.txt is not a PDF; each PDF once
    assert [line["schema"] for line in lines] == ["kyso.verification/1"] * 5
    assert found["a/passed.pdf"]["indication"] == "TOTAL-PASSED"
    assert found["a/deeper/still/PASSED-TOO.PDF"]["indication"] == "TOTAL-PASSED"
    assert found["b/page-added.pdf"]["indication"] == "TOTAL-FAILED"
    assert found["b/b-b.pdf"]["indication"] == "INDETERMINATE"
    assert found["c/garbage.pdf"]["readable"] is False
    # The summary goes to stderr, so that stdout stays one JSON document per line.
    assert "TỔNG HỢP KẾT QUẢ KIỂM TRA" in done.stderr


def test_output_follows_the_walk_order(folder, dev_env):
    done = kyso_verify(str(folder), "--json", *trust(dev_env))
    paths = [
        Path(json.loads(line)["path"]).relative_to(folder) for line in done.stdout.splitlines()
    ]
    # Sorted within each folder, folders before their siblings' files as os.walk yields them.
    assert [p.as_posix() for p in paths] == [
        "a/passed.pdf",
        "a/deeper/still/PASSED-TOO.PDF",
        "b/b-b.pdf",
        "b/page-added.pdf",
        "c/garbage.pdf",
    ]


def test_summary_table_in_vietnamese_and_english(folder, dev_env):
    vi = kyso_verify(str(folder), *trust(dev_env))
    assert vi.returncode == 1
    table = vi.stdout[vi.stdout.index("TỔNG HỢP KẾT QUẢ KIỂM TRA") :]
    counts = {
        "Không hợp lệ (TOTAL-FAILED)": 1,
        "Không đọc được": 1,
        "Chưa xác định được (INDETERMINATE)": 1,
        "Hợp lệ (TOTAL-PASSED)": 2,
        "Tổng số tệp": 5,
    }
    for label, number in counts.items():
        (row,) = [line for line in table.splitlines() if line.startswith(label)]
        assert row.split()[-1] == str(number), row
    # One line per file before the table, with its verdict.
    assert "KHÔNG HỢP LỆ (TOTAL-FAILED) / FORBIDDEN_MODIFICATION" in vi.stdout
    assert "page-added.pdf" in vi.stdout
    en = kyso_verify(
        str(folder / "a"), str(folder / "b" / "b-b.pdf"), "--lang", "en", *trust(dev_env)
    )
    assert en.returncode == 2  # the worst of passed, passed, indeterminate
    assert "VERIFICATION SUMMARY" in en.stdout
    assert "Indeterminate (INDETERMINATE)" in en.stdout


def test_unreadable_and_missing_paths_exit_3(folder, dev_env):
    done = kyso_verify(
        str(folder / "a" / "passed.pdf"),
        str(folder / "c" / "garbage.pdf"),
        str(folder / "absent.pdf"),
        "--lang",
        "en",
        *trust(dev_env),
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "absent.pdf: no such file or folder" in done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("Unreadable")]
    assert row.split()[-1] == "2"


def test_a_folder_without_pdfs(tmp_path, dev_env):
    (tmp_path / "readme.txt").write_text("nothing to verify")
    done = kyso_verify(str(tmp_path), *trust(dev_env))
    assert done.returncode == 3
    assert "no PDF file found" in done.stderr


def test_progress_bar_on_a_terminal_only(folder, dev_env):
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "verify", str(folder / "a"), *trust(dev_env)],
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=ROOT,
            env={**os.environ, "KYSO_CONFIG": "/nonexistent/kyso.toml"},
        )
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert process.returncode == 0
    text = seen.decode("utf-8", "replace")
    assert "█" in text
    assert "2/2 100%" in text
    assert "█".encode() not in stdout  # stdout is a pipe: no bar there
    # Without a terminal (the other tests), stderr carries no bar.
    done = kyso_verify(str(folder / "a"), *trust(dev_env))
    assert "█" not in done.stderr


def test_a_bad_algorithm_rules_file_stops_the_command(folder, tmp_path, dev_env):
    rules = tmp_path / "rules.toml"
    rules.write_text("[digests]\nsha1 = { until = 'soon' }\n", encoding="utf-8")
    done = kyso_verify(str(folder / "a"), "--algorithms", str(rules), *trust(dev_env))
    assert done.returncode == 4
    assert "digests.sha1.until" in done.stderr
    config = tmp_path / "kyso.toml"
    config.write_text(f'[verify]\nalgorithms = "{rules}"\n', encoding="utf-8")
    done = kyso_verify(str(folder / "a"), "--config", str(config), *trust(dev_env))
    assert done.returncode == 4
    assert "digests.sha1.until" in done.stderr
