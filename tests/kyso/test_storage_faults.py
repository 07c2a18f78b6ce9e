"""Storage faults through the service, with the filesystem store: nothing acknowledged is lost.

- the start-up check (``kyso.reconcile``) on SQLite and PostgreSQL: rows without objects are
  reported and kept, objects without rows are catalogued;
- a full disk (a 2 MiB tmpfs mounted by the test): RESOURCE_EXHAUSTED, no partial object, the
  service keeps serving;
- ``kyso serve`` as a child process SIGKILLed at random moments during 1,000 uploads;
- ``kyso upload``/``kyso download`` of a 200 MB file with the server's memory measured.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

import storage
from kyso import db
from kyso.app import Application, components
from kyso.catalogue import Catalogue, CatalogueEntry
from kyso.config import load_config
from kyso.errors import NotFound
from kyso.reconcile import ReconcileError, ReconcileReport, reconcile, start_reconcile
from kyso.server import Server
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

from .conftest import token

HEX64 = re.compile(r"[0-9a-f]{64}")
MiB = 1024 * 1024


def _auth(config, client="workflow"):
    return [("authorization", f"Bearer {token(config, client)}")]


def _upload_requests(data: bytes, *, chunk: int = 64 * 1024, filename: str = "doc.pdf"):
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename=filename,
            content_type="application/pdf",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
    )
    for start in range(0, len(data), chunk):
        yield documents_pb2.UploadRequest(chunk=data[start : start + chunk])


def _visible_objects(root: Path) -> list[Path]:
    """Files a reader could take for objects: anything named by a bare digest, anywhere."""
    return sorted(p for p in root.rglob("*") if p.is_file() and HEX64.fullmatch(p.name))


def _assert_no_partial_object(root: Path) -> None:
    """Every object file hashes to its name and sits in its shard with its description."""
    for path in _visible_objects(root):
        digest = path.name
        assert path.parent == root / "objects" / digest[:2] / digest[2:4], path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
        assert path.with_name(digest + ".json").is_file(), path


# ---------------------------------------------------------------- the start-up check


@pytest.fixture
def parts(db_engine: sa.Engine, tmp_path: Path) -> tuple[storage.FilesystemStore, Catalogue]:
    db.upgrade(db_engine, components())
    return storage.FilesystemStore(tmp_path / "store"), Catalogue(db_engine)


def _put(store: storage.ObjectStore, data: bytes) -> storage.StoredObject:
    return store.put(data, content_type="application/pdf", metadata={"filename": "orphan.pdf"})


def test_agreeing_sides_are_consistent(parts) -> None:
    store, catalogue = parts
    for i in range(5):
        stored = _put(store, b"document %d" % i)
        catalogue.record(
            CatalogueEntry(ref=str(stored.ref), size=stored.size, content_type="application/pdf")
        )
    report = reconcile(store=store, catalogue=catalogue)
    assert report.consistent
    assert (report.rows_checked, report.objects_checked) == (5, 5)
    assert report.missing == report.catalogued == report.deferred == ()


def test_rows_without_objects_are_reported_and_kept(parts, caplog) -> None:
    store, catalogue = parts
    kept = _put(store, b"still here")
    catalogue.record(CatalogueEntry(ref=str(kept.ref), size=kept.size, content_type="x/y"))
    lost = sorted(f"sha256/{hashlib.sha256(b'lost %d' % i).hexdigest()}" for i in range(3))
    for ref in lost:
        catalogue.record(CatalogueEntry(ref=ref, size=7, content_type="application/pdf"))

    report = reconcile(store=store, catalogue=catalogue)

    assert not report.consistent
    assert report.missing == tuple(lost)
    assert report.missing_count == 3
    assert report.catalogued == ()
    for ref in lost:  # never deleted: the row is the evidence of what to restore
        assert catalogue.get(ref).size == 7
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert {getattr(r, "ref", None) for r in errors} >= set(lost)
    assert all("restore it from a backup" in r.getMessage() for r in errors if hasattr(r, "ref"))


def test_objects_without_rows_are_catalogued_with_what_the_store_knows(parts) -> None:
    store, catalogue = parts
    listed = _put(store, b"catalogued")
    catalogue.record(CatalogueEntry(ref=str(listed.ref), size=listed.size, content_type="x/y"))
    # A crash between store.put and catalogue.record leaves these behind.
    orphans = [_put(store, os.urandom(1000 + i)) for i in range(4)]

    report = reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))

    assert report.consistent
    assert sorted(report.catalogued) == sorted(str(o.ref) for o in orphans)
    assert report.objects_checked == 5
    for orphan in orphans:
        entry = catalogue.get(str(orphan.ref))
        assert entry.size == orphan.size
        assert entry.content_type == "application/pdf"
        assert entry.filename == "orphan.pdf"
        assert entry.uploader == ""  # not known: never invented
        assert entry.created_at == orphan.created
    again = reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))
    assert again.catalogued == ()
    assert again.rows_checked == again.objects_checked == 5


def test_young_objects_are_left_to_their_upload(parts) -> None:
    store, catalogue = parts
    in_flight = _put(store, b"an upload between its put and its row")
    report = reconcile(store=store, catalogue=catalogue, min_age=timedelta(minutes=5))
    assert report.deferred == (str(in_flight.ref),)
    assert report.catalogued == ()
    with pytest.raises(NotFound):
        catalogue.get(str(in_flight.ref))


def test_both_directions_at_once_in_one_pass(parts) -> None:
    store, catalogue = parts
    refs = {}
    for i in range(30):
        data = b"mixed %d" % i
        ref = f"sha256/{hashlib.sha256(data).hexdigest()}"
        refs[ref] = i % 3  # 0: both sides, 1: object only, 2: row only
        if i % 3 in (0, 1):
            _put(store, data)
        if i % 3 in (0, 2):
            catalogue.record(CatalogueEntry(ref=ref, size=len(data), content_type="x/y"))
    report = reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))
    assert set(report.missing) == {r for r, kind in refs.items() if kind == 2}
    assert set(report.catalogued) == {r for r, kind in refs.items() if kind == 1}
    assert report.rows_checked == 20
    assert report.objects_checked == 20


def test_a_side_out_of_order_stops_the_check_before_it_acts(parts) -> None:
    store, catalogue = parts
    _put(store, b"a")

    class Unordered:
        def __init__(self, inner: Catalogue) -> None:
            self.inner = inner

        def refs(self) -> Iterator[list[str]]:
            yield ["sha256/" + "f" * 64, "sha256/" + "0" * 64]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    with pytest.raises(ReconcileError, match="ascending order"):
        reconcile(store=store, catalogue=Unordered(catalogue), min_age=timedelta(0))  # type: ignore[arg-type]


def test_background_task_reports_and_stops(parts) -> None:
    store, catalogue = parts
    orphan = _put(store, b"left by a crash")
    task = start_reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))
    report = task.join(timeout=30)
    assert report is not None
    assert report.catalogued == (str(orphan.ref),)
    task.stop()  # after the end: a no-op

    stop = threading.Event()
    stop.set()
    stopped = reconcile(store=store, catalogue=catalogue, stop=stop)
    assert not stopped.complete
    assert not stopped.consistent


def test_background_task_catalogues_deferred_objects_once_they_are_old_enough(parts) -> None:
    store, catalogue = parts
    left_by_a_crash = _put(store, b"stored just before the crash")
    task = start_reconcile(store=store, catalogue=catalogue, min_age=timedelta(seconds=1))
    report = task.join(timeout=30)
    assert report is not None
    assert report.catalogued == (str(left_by_a_crash.ref),)
    assert catalogue.get(str(left_by_a_crash.ref)).size == left_by_a_crash.size


def test_stopping_the_task_while_it_waits_for_young_objects(parts) -> None:
    store, catalogue = parts
    young = _put(store, b"young")
    task = start_reconcile(store=store, catalogue=catalogue, min_age=timedelta(hours=1))
    time.sleep(0.2)
    task.stop(timeout=10)
    assert not task.running  # it does not sit out the hour
    assert task.error is None
    assert task.report is not None
    # Stopped while waiting (deferred) or, on a slow machine, during its first pass.
    assert task.report.deferred == (str(young.ref),) or not task.report.complete
    with pytest.raises(NotFound):
        catalogue.get(str(young.ref))


def test_background_task_logs_a_failure_instead_of_raising(parts, tmp_path, caplog) -> None:
    store, catalogue = parts
    _put(store, b"x")
    objects = tmp_path / "store" / "objects"
    objects.rename(tmp_path / "store" / "objects.moved")
    objects.write_text("a file where the object directory should be")
    task = start_reconcile(store=store, catalogue=catalogue)
    assert task.join(timeout=30) is None
    assert isinstance(task.error, storage.StorageError)
    assert "cannot list the objects" in str(task.error)
    assert any("could not finish" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- disk full


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (the suite runs as root)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
async def tiny_server(write_config, tiny_disk: Path) -> Iterator[Server]:
    path = write_config("")
    text = re.sub(r'(?m)^path = ".*"$', f'path = "{tiny_disk / "store"}"', path.read_text())
    path.write_text(text)
    config = load_config(path)
    app = Application.open(config)
    srv = Server(config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.mark.parametrize("chunk", [64 * 1024, MiB])
async def test_disk_full_is_resource_exhausted_and_the_service_carries_on(
    tiny_server: Server, tiny_disk: Path, chunk: int
) -> None:
    config = tiny_server.config
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        big = os.urandom(3 * MiB)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Upload(
                _upload_requests(big, chunk=chunk), metadata=_auth(config), timeout=30
            )
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "full" in err.value.details()
        assert _visible_objects(tiny_disk) == []
        assert list((tiny_disk / "store" / "tmp").iterdir()) == []  # the staging file is gone
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Stat(
                documents_pb2.StatRequest(
                    ref=common_pb2.DocumentRef(ref=f"sha256/{hashlib.sha256(big).hexdigest()}")
                ),
                metadata=_auth(config),
            )
        assert err.value.code() is grpc.StatusCode.NOT_FOUND  # not catalogued either

        small = os.urandom(100_000)
        stored = await stub.Upload(_upload_requests(small), metadata=_auth(config), timeout=30)
        assert stored.sha256 == hashlib.sha256(small).hexdigest()
        received = b"".join(
            [
                piece.chunk
                async for piece in stub.Download(
                    documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config)
                )
            ]
        )
        assert received == small
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(
            health_pb2.HealthCheckRequest(service="kyso.v1.DocumentService")
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    _assert_no_partial_object(tiny_disk / "store")


# ---------------------------------------------------------------- kyso serve as a child process

_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``kyso serve --config …`` as a child process that can be killed and started again."""

    def __init__(
        self, config_path: Path, port: int, log_path: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ServeProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(f"127.0.0.1:{self.port}", options=_FAST_RECONNECT) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while True:
                assert self.proc is not None
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                try:
                    answer = health.Check(
                        health_pb2.HealthCheckRequest(service="kyso.v1.DocumentService"),
                        timeout=0.5,
                        wait_for_ready=True,
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, "kyso serve did not become ready in time"
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def serve_config(write_config, tmp_path: Path) -> tuple[Path, int]:
    """A configuration for ``kyso serve`` on a fixed free port (so that restarts keep it)."""
    port = _free_port()
    path = write_config("")
    text = path.read_text().replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"')
    path.write_text(text)
    return path, port


# How a call cut off by the server's death ends, seen from the client.
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _upload_sync(stub, data: bytes, auth, *, chunk: int = 16 * 1024, timeout: float = 15):
    return stub.Upload(
        _upload_requests(data, chunk=chunk), metadata=auth, timeout=timeout, wait_for_ready=True
    )


def _download_sync(stub, ref: str, auth) -> bytes:
    request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref))
    return b"".join(p.chunk for p in stub.Download(request, metadata=auth, timeout=60))


@dataclass(frozen=True)
class KillRun:
    """What a run of uploads under random SIGKILLs saw."""

    docs: list[bytes]
    acked: dict[int, str]
    kills: int
    interrupted: int


def uploads_under_sigkill(
    config_path: Path,
    port: int,
    log_path: Path,
    *,
    total: int = 1000,
    workers: int = 4,
    env: dict[str, str] | None = None,
) -> KillRun:
    """Upload ``total`` small documents from ``workers`` clients while ``kyso serve`` is
    SIGKILLed at random moments and restarted; retry what failed until everything is
    acknowledged; kill once more; restart and check that every acknowledged document downloads
    with its hash and is catalogued. Store-specific checks are the caller's."""
    config = load_config(config_path)
    auth = _auth(config)
    rng = random.Random()
    # Mostly one or two chunks; every tenth document spans many, so kills land mid-stream too.
    docs = [os.urandom(rng.randint(1, 24 * 1024) if i % 10 else 300 * 1024) for i in range(total)]
    acked: dict[int, str] = {}
    interrupted: list[grpc.StatusCode] = []
    unexpected: list[BaseException] = []
    todo: list[int] = list(range(total))
    lock = threading.Lock()
    # Set when the run ends, however it ends: a client must never outlive a failed run (it
    # would retry against a dead server forever and keep the test process from exiting).
    over = threading.Event()
    # What is tested is durability under kills, not admission: the per-client rate limit
    # ([limits]) is raised so that a fast machine's clients and the read-back stay under it.
    limits = {"KYSO_LIMITS__CALLS_PER_SECOND": "100000", "KYSO_LIMITS__BURST": "100000"}
    env = {**(env if env is not None else os.environ), **limits}
    server = ServeProcess(config_path, port, log_path, env=env).start()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=_FAST_RECONNECT) as channel:
            stub = documents_pb2_grpc.DocumentServiceStub(channel)
            while not over.is_set():
                with lock:
                    if not todo:
                        return
                    index = todo.pop()
                try:
                    stored = _upload_sync(stub, docs[index], auth)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        # over the client's rate ([limits]): back off and retry, as a real
                        # client does on RESOURCE_EXHAUSTED with RetryInfo
                        with lock:
                            todo.append(index)
                        time.sleep(0.1)
                        continue
                    if exc.code() not in _RETRYABLE:
                        unexpected.append(exc)
                        return
                    # The server died under the call: the client retries, as a real one would.
                    with lock:
                        interrupted.append(exc.code())
                        todo.append(index)
                    continue
                if stored.ref.ref != f"sha256/{hashlib.sha256(docs[index]).hexdigest()}":
                    unexpected.append(AssertionError(f"document {index} acked as {stored.ref}"))
                    return
                with lock:
                    acked[index] = stored.ref.ref

    def all_acked() -> bool:
        with lock:
            return len(acked) == total

    kills = 0
    try:
        server.wait_ready()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        while not all_acked() and not unexpected:
            time.sleep(rng.uniform(0.2, 1.5))
            if all_acked():
                break
            server.kill()
            kills += 1
            server.start().wait_ready()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert unexpected == []
        server.kill()  # the last one too: what follows must hold after a crash

        # Every acknowledged upload downloads with its hash, and is catalogued.
        server.start().wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = documents_pb2_grpc.DocumentServiceStub(channel)
            for index, ref in acked.items():
                data = _download_sync(stub, ref, auth)
                assert hashlib.sha256(data).hexdigest() == ref.removeprefix("sha256/")
                assert data == docs[index]
                info = stub.Stat(
                    documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref=ref)), metadata=auth
                )
                assert info.document.size == len(docs[index])
        assert server.stop() == 0
    finally:
        over.set()
        server.ensure_dead()
    assert len(acked) == total
    assert kills >= 3, "the test must actually kill the server mid-run"
    assert interrupted, "no upload was interrupted: the kills missed every call"
    return KillRun(docs=docs, acked=acked, kills=kills, interrupted=len(interrupted))


def catalogue_against(store: storage.ObjectStore, database_url: str) -> ReconcileReport:
    """The start-up check over a stopped service's database and store."""
    engine = db.create_engine(database_url)
    try:
        return reconcile(store=store, catalogue=Catalogue(engine), min_age=timedelta(0))
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(900)  # a thousand uploads and kills; slow on a busy machine
def test_sigkill_at_random_moments_during_1000_uploads_loses_nothing(
    serve_config: tuple[Path, int], tmp_path: Path
) -> None:
    config_path, port = serve_config
    config = load_config(config_path)
    run = uploads_under_sigkill(config_path, port, tmp_path / "serve.log")

    root = config.storage.path
    _assert_no_partial_object(root)
    assert _visible_objects(root / "tmp") == []
    # Nothing in the catalogue lacks its object; objects left between put and row are catalogued.
    report = catalogue_against(storage.FilesystemStore(root, create=False), config.database.url)
    assert report.complete
    assert report.missing == ()
    assert report.rows_checked == report.objects_checked == len(run.acked)


def _peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM) so far."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1)) * 1024


def _kyso(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_cli_round_trip_of_200_mb_keeps_the_server_memory_bounded(
    serve_config: tuple[Path, int], tmp_path: Path
) -> None:
    config_path, port = serve_config
    token_file = tmp_path / "workflow.token"
    with config_path.open("a") as handle:
        handle.write(f'\n[client]\nserver = "127.0.0.1:{port}"\ntoken_file = "{token_file}"\n')
        # uploads are bounded by max_document_bytes (64 MiB by default): room for this one
        handle.write("\n[signing]\nmax_document_bytes = 268435456\n")
    size = 200 * 1000 * 1000
    source = tmp_path / "big.pdf"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        block = os.urandom(MiB)
        for i in range(0, size, MiB):
            piece = (i.to_bytes(8, "big") + block[8:])[: min(MiB, size - i)]
            digest.update(piece)
            out.write(piece)
    server = ServeProcess(config_path, port, tmp_path / "serve.log").start()
    try:
        server.wait_ready()
        before = _peak_rss_bytes(server.pid)

        uploaded = _kyso("upload", str(source), "--config", str(config_path))
        assert uploaded.returncode == 0, uploaded.stderr
        ref = uploaded.stdout.strip()
        assert ref == f"sha256/{digest.hexdigest()}"

        target = tmp_path / "back.pdf"
        downloaded = _kyso("download", ref, "-o", str(target), "--config", str(config_path))
        assert downloaded.returncode == 0, downloaded.stderr
        after = _peak_rss_bytes(server.pid)
        assert server.stop() == 0
    finally:
        server.ensure_dead()
    assert target.stat().st_size == size
    back = hashlib.sha256()
    with target.open("rb") as handle:
        while block := handle.read(MiB):
            back.update(block)
    assert back.hexdigest() == digest.hexdigest()
    growth = after - before
    # The document went through whole, the server's peak grew by a fraction of it.
    assert growth < 100 * 1000 * 1000, f"server peak RSS grew by {growth / 1e6:.0f} MB"


def test_an_object_whose_call_failed_is_catalogued_with_its_uploader(parts, caplog) -> None:
    """The database failed after the put (the call answered UNAVAILABLE): the object carries
    who stored it, and the start-up check records it as what it is."""
    store, catalogue = parts
    stored = store.put(
        os.urandom(2000),
        content_type="application/pdf",
        metadata={"uploader": "workflow", "unit": "000.00.21.H49"},
    )
    report = reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))
    assert report.catalogued == (str(stored.ref),)
    entry = catalogue.get(str(stored.ref))
    assert (entry.uploader, entry.unit_code) == ("workflow", "000.00.21.H49")
    warnings = [r for r in caplog.records if getattr(r, "ref", None) == str(stored.ref)]
    assert "its call failed" in warnings[0].getMessage()
    assert "uploader is unknown" not in warnings[0].getMessage()
