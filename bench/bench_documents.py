"""DocumentService benchmark: documents through the gRPC service against the minio SDK straight
to the same S3 endpoint, in one run, on one throw-away Ceph RADOS Gateway.

- ``documents.upload_100mb`` / ``documents.download_100mb``: MB/s of a 100 MB document through
  ``DocumentService.Upload``/``Download`` (client → gRPC on loopback → server → S3 adapter →
  gateway), baseline the SDK's ``put_object``/``get_object`` of the same bytes;
- ``documents.put_100kb``: 100 KB uploads per second through the service, baseline SDK puts;
- ``documents.direct_upload_100mb`` / ``documents.direct_download_100mb`` /
  ``documents.direct_put_100kb``: the same through direct transfer (``[storage]
  direct_transfer``): BeginDirectUpload, a PUT of the bytes to the presigned URL, then
  CompleteDirectUpload (the server reads the staged object back, checks its SHA-256, copies it
  server-side and catalogues it); GetDownloadUrl, then a GET of the URL, the client hashing the
  bytes as they come and checking them against the answer's sha256 (as ``kyso download`` does;
  the SDK baseline does not hash). Baselines: the same SDK measurements.

``ratio`` = service / SDK (higher is better; goal ≥ 0.8 on every row, issue 24). A missed
streaming row's reason sets the service beside the S3 adapter alone, bench_storage's rows
measured against the same gateway after the server stops (``judge_against_adapter``); a missed
direct row's reason gives each step's time as the client measured it beside the SDK's same steps
in the run (``judge_direct``): the presigned PUT against the SDK's put and CompleteDirectUpload
against an SDK GET of the object and SHA-256 of it (the server reads the staged bytes back to
hash them); the GET with and without the client's hashing, and SHA-256 of the same bytes; per
100 KB upload, Begin + PUT + Complete against one SDK put, one SDK GET and the list + delete of
a staging object's versions. The server runs in this
process on its own event-loop thread, as ``kyso serve``
runs it. The gRPC client runs in a child process (a blocking stub sending 1 MiB chunks, as
``kyso upload`` does), as a real client would: in the server's process it would take the
server's interpreter lock for its own protobuf work and count it against the service. The SDK
baseline runs in this process, with the idle server beside it. Every round uses new content,
so the store never short-cuts a re-put.

``python -m bench.bench_documents`` prints the result.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import urllib3
from minio import Minio

from bench.bench_storage import measure as storage_measure
from bench.common import at_least, judged, number, result
from kyso.app import Application
from kyso.config import Config, load_config
from kyso.dev.rgw import RadosGateway
from kyso.server import Server
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

__all__ = ["run"]

MB = 1_000_000
CHUNK = 1024 * 1024  # what `kyso upload` sends per message


def _data(size: int) -> bytes:
    """Incompressible bytes, different on every call, made quickly."""
    block = hashlib.sha512(uuid.uuid4().bytes).digest() * (CHUNK // 64)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += i.to_bytes(8, "big") + block[8:]
        i += 1
    return bytes(out[:size])


def _entry(value: float, unit: str, baseline: float) -> dict[str, float | str]:
    return {"value": value, "unit": unit, "baseline": baseline, "ratio": value / baseline}


class _ServerThread:
    """A kyso server on loopback, on its own event loop in a daemon thread."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._main, name="bench-server", daemon=True)

    def __enter__(self) -> _ServerThread:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise RuntimeError("the benchmark server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = await asyncio.to_thread(Application.open, self._config)
        server = Server(self._config, app)
        await server.start()
        self.port = server.port
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()


def _write_config(home: Path, endpoint: str, bucket: str, token: str) -> Path:
    (home / "bench.token").write_text(token)
    path = home / "kyso.toml"
    path.write_text(
        f"""
[server]
address = "127.0.0.1:0"
metrics_address = ""
log_level = "WARNING"
max_message_bytes = {4 * CHUNK}

[database]
url = "sqlite:///{home / "kyso.db"}"

[storage]
backend = "s3"
direct_transfer = true

[storage.s3]
endpoint = "{endpoint}"
bucket = "{bucket}"
secure = false

[signing]
max_document_bytes = {2 * 100 * MB}

[clients.bench]
roles = ["workflow"]
unit = "000.00.21.H49"
token_file = "bench.token"
# the benchmark's one client measures the server, not its own share of it
calls_per_second = 100000
burst = 100000
"""
    )
    return path


def _requests(data: bytes) -> Iterator[documents_pb2.UploadRequest]:
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename="bench.pdf",
            content_type="application/pdf",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
    )
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield documents_pb2.UploadRequest(chunk=bytes(view[start : start + CHUNK]))


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(
    *,
    large_bytes: int = 100 * MB,
    small_bytes: int = 100 * 1000,
    small_count: int = 150,
    rounds: int = 2,
) -> dict[str, dict[str, float | str]]:
    """Start a gateway and a server, measure both paths, stop everything."""
    home = Path(tempfile.mkdtemp(prefix="kyso-bench-documents-"))
    gateway = RadosGateway(home / "rgw")
    saved = {k: os.environ.get(k) for k in ("KYSO_S3_ACCESS_KEY", "KYSO_S3_SECRET_KEY")}
    try:
        gateway.start()
        user = gateway.create_user("bench")
        os.environ["KYSO_S3_ACCESS_KEY"] = user.access_key
        os.environ["KYSO_S3_SECRET_KEY"] = user.secret_key
        bucket = f"bench-docs-{uuid.uuid4().hex[:10]}"
        token = secrets.token_hex(16)
        config = load_config(_write_config(home, gateway.endpoint, bucket, token))
        sdk = Minio(
            gateway.endpoint,
            access_key=user.access_key,
            secret_key=user.secret_key,
            secure=False,
        )
        with _ServerThread(config) as server:
            rows, parts = _measure(
                server.port, token, sdk, bucket, large_bytes, small_bytes, small_count, rounds
            )
        adapter = storage_measure(
            gateway.endpoint, user.access_key, user.secret_key, large_bytes, small_bytes, 100
        )
        return judge_against_adapter(rows, adapter) | judge_direct(rows, parts)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        gateway.stop()
        shutil.rmtree(home, ignore_errors=True)


def _measure(
    port: int,
    token: str,
    sdk: Minio,
    bucket: str,
    large_bytes: int,
    small_bytes: int,
    small_count: int,
    rounds: int,
) -> tuple[dict[str, dict[str, float | str]], _DirectParts]:
    """The six rows, and the parts of the direct rows' times (for their reasons)."""
    part = 16 * 1024 * 1024  # the S3 adapter's default part size, for a like-for-like SDK

    def client(*args: object) -> dict[str, Any]:
        """Run one measurement in a child process (see ``_client``) and return its answer."""
        argv = [sys.executable, "-m", "bench.bench_documents", "client", str(port), *map(str, args)]
        env = {**os.environ, "KYSO_BENCH_TOKEN": token}
        done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def sdk_get(key: str) -> None:
        response = sdk.get_object(bucket, key)
        try:
            for _ in response.stream(CHUNK):
                pass
        finally:
            response.close()
            response.release_conn()

    client("upload", 1000)  # warm-up: creates the bucket
    # Interleaved rounds, best of each, so that a noisy neighbour hurts both sides alike.
    put_s = {"service": float("inf"), "sdk": float("inf")}
    ref = ""
    for i in range(rounds):
        data = _data(large_bytes)
        start = time.perf_counter()
        sdk.put_object(bucket, f"sdk/{i}", io.BytesIO(data), len(data), part_size=part)
        put_s["sdk"] = min(put_s["sdk"], time.perf_counter() - start)
        del data
        answer = client("upload", large_bytes)
        put_s["service"] = min(put_s["service"], answer["seconds"])
        ref = answer["ref"]
    direct_up = min(
        (client("direct-upload", large_bytes) for _ in range(rounds)), key=lambda a: a["seconds"]
    )
    put_s["direct"] = direct_up["seconds"]
    get_s = {"sdk": min(_timed(sdk_get, "sdk/0") for _ in range(rounds + 1))}
    get_s["service"] = client("download", ref, rounds + 1)["seconds"]
    direct_down = client("direct-download", ref, rounds + 1)
    get_s["direct"] = direct_down["seconds"]
    get_s["sdk"] = min(get_s["sdk"], *(_timed(sdk_get, "sdk/0") for _ in range(rounds + 1)))
    data = _data(large_bytes)
    sha256_s = min(_timed(hashlib.sha256, data) for _ in range(3))  # in the server's process
    del data

    blobs = [os.urandom(small_bytes) for _ in range(small_count)]
    start = time.perf_counter()
    for n, blob in enumerate(blobs):
        sdk.put_object(bucket, f"sdk-small/{n}", io.BytesIO(blob), len(blob))
    sdk_small = small_count / (time.perf_counter() - start)
    service_small = client("small", small_bytes, small_count)["rate"]
    direct_small = client("direct-small", small_bytes, small_count)
    # What a completion does to the gateway besides the client's PUT: read the staged object
    # back, put it again (``sdk_small``), and after the answer list its versions and delete them.
    small_get_s = sum(_timed(sdk_get, f"sdk-small/{n}") for n in range(small_count)) / small_count
    start = time.perf_counter()
    for n in range(small_count):
        key = f"sdk-small/{n}"
        for obj in sdk.list_objects(bucket, prefix=key, include_version=True):
            sdk.remove_object(bucket, key, version_id=obj.version_id)
    discard_s = (time.perf_counter() - start) / small_count

    mb = large_bytes / MB
    parts = _DirectParts(
        megabytes=mb,
        small_kb=small_bytes / 1000,
        upload=direct_up,
        sdk_get_s=get_s["sdk"],
        server_sha256_s=sha256_s,
        download=direct_down,
        small=direct_small,
        sdk_small_get_s=small_get_s,
        sdk_discard_s=discard_s,
    )
    rows = {
        "documents.upload_100mb": _entry(mb / put_s["service"], "MB/s", mb / put_s["sdk"]),
        "documents.download_100mb": _entry(mb / get_s["service"], "MB/s", mb / get_s["sdk"]),
        "documents.put_100kb": _entry(service_small, "puts/s", sdk_small),
        "documents.direct_upload_100mb": _entry(mb / put_s["direct"], "MB/s", mb / put_s["sdk"]),
        "documents.direct_download_100mb": _entry(mb / get_s["direct"], "MB/s", mb / get_s["sdk"]),
        "documents.direct_put_100kb": _entry(direct_small["rate"], "puts/s", sdk_small),
    }
    return rows, parts


def _direct_put(
    stub: documents_pb2_grpc.DocumentServiceStub,
    http: urllib3.PoolManager,
    data: bytes,
    auth: list[tuple[str, str]],
) -> tuple[str, float, float, float]:
    """One direct upload: Begin, PUT, Complete; the stored ref and the seconds of each step."""
    began = time.perf_counter()
    grant = stub.BeginDirectUpload(
        documents_pb2.BeginDirectUploadRequest(
            filename="bench.pdf",
            content_type="application/pdf",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        ),
        metadata=auth,
    )
    putting = time.perf_counter()
    answer = http.request("PUT", grant.url, body=data, headers=dict(grant.headers))
    if answer.status != 200:
        raise RuntimeError(f"the presigned PUT answered {answer.status}")
    completing = time.perf_counter()
    done = stub.CompleteDirectUpload(
        documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id), metadata=auth
    )
    ref: str = done.document.ref.ref
    return ref, putting - began, completing - putting, time.perf_counter() - completing


def _direct_get(
    stub: documents_pb2_grpc.DocumentServiceStub,
    http: urllib3.PoolManager,
    ref: str,
    auth: list[tuple[str, str]],
    *,
    hashing: bool = True,
) -> tuple[float, float]:
    """One direct download, hashed as it comes and checked against the answer's sha256
    (``hashing=False``: the GET alone, for the reason); the seconds of GetDownloadUrl and of
    the GET."""
    began = time.perf_counter()
    grant = stub.GetDownloadUrl(
        documents_pb2.GetDownloadUrlRequest(ref=common_pb2.DocumentRef(ref=ref)), metadata=auth
    )
    getting = time.perf_counter()
    answer = http.request("GET", grant.url, preload_content=False)
    digest = hashlib.sha256()
    try:
        for piece in answer.stream(4 * CHUNK):
            if hashing:
                digest.update(piece)
    finally:
        answer.release_conn()
    if hashing and digest.hexdigest() != grant.sha256:
        raise RuntimeError("the presigned GET gave other bytes than the sha256")
    return getting - began, time.perf_counter() - getting


def _sha256_of(pieces: list[bytes]) -> None:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)


def _client(argv: list[str]) -> dict[str, Any]:
    """The gRPC client side, in its own process: ``PORT upload SIZE`` (seconds and ref of one
    upload of new content), ``PORT download REF TIMES`` (best seconds), ``PORT small SIZE
    COUNT`` (sequential uploads per second); ``direct-upload``, ``direct-download`` and
    ``direct-small`` the same through direct transfer. The token comes from
    ``KYSO_BENCH_TOKEN``."""
    port, action, *args = argv
    auth = [("authorization", f"Bearer {os.environ['KYSO_BENCH_TOKEN']}")]
    options = [("grpc.max_receive_message_length", 4 * CHUNK)]
    http = urllib3.PoolManager(blocksize=CHUNK)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        if action == "direct-upload":
            data = _data(int(args[0]))
            start = time.perf_counter()
            ref, begin, put, complete = _direct_put(stub, http, data, auth)
            seconds = time.perf_counter() - start
            return {
                "seconds": seconds,
                "ref": ref,
                "begin": begin,
                "put": put,
                "complete": complete,
            }
        if action == "direct-download":
            ref, times = args[0], int(args[1])
            steps = min((_direct_get(stub, http, ref, auth) for _ in range(times)), key=sum)
            get_only = min(
                _direct_get(stub, http, ref, auth, hashing=False)[1] for _ in range(times)
            )
            # SHA-256 of the same bytes, in the same pieces, in this process
            grant = stub.GetDownloadUrl(
                documents_pb2.GetDownloadUrlRequest(ref=common_pb2.DocumentRef(ref=ref)),
                metadata=auth,
            )
            answer = http.request("GET", grant.url, preload_content=False)
            pieces = list(answer.stream(4 * CHUNK))
            answer.release_conn()
            hash_s = min(_timed(_sha256_of, pieces) for _ in range(times))
            return {
                "seconds": sum(steps),
                "grant": steps[0],
                "get": steps[1],
                "get_only": get_only,
                "sha256": hash_s,
            }
        if action == "direct-small":
            size, count = int(args[0]), int(args[1])
            blobs = [os.urandom(size) for _ in range(count)]
            sums = [0.0, 0.0, 0.0]
            start = time.perf_counter()
            for blob in blobs:
                _, *timed = _direct_put(stub, http, blob, auth)
                sums = [a + b for a, b in zip(sums, timed, strict=True)]
            rate = count / (time.perf_counter() - start)
            begin, put, complete = (x / count for x in sums)
            return {"rate": rate, "begin": begin, "put": put, "complete": complete}
        if action == "upload":
            data = _data(int(args[0]))
            start = time.perf_counter()
            ref = stub.Upload(_requests(data), metadata=auth).ref.ref
            return {"seconds": time.perf_counter() - start, "ref": ref}
        if action == "download":
            request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=args[0]))

            def download() -> None:
                for _ in stub.Download(request, metadata=auth):
                    pass

            return {"seconds": min(_timed(download) for _ in range(int(args[1])))}
        size, count = int(args[0]), int(args[1])
        blobs = [os.urandom(size) for _ in range(count)]
        start = time.perf_counter()
        for blob in blobs:
            stub.Upload(_requests(blob), metadata=auth)
        return {"rate": count / (time.perf_counter() - start)}


GOAL = at_least(0.8)
"""Issue 24: each row ≥ 0.8× the SDK straight to the gateway."""
_ADAPTER_ROWS = {
    "documents.upload_100mb": "storage.s3.upload_100mb",
    "documents.download_100mb": "storage.s3.download_100mb",
    "documents.put_100kb": "storage.s3.put_100kb",
}


def judge_against_adapter(
    rows: Mapping[str, Mapping[str, Any]], adapter: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each row with its goal; a missed one's reason sets the service beside the S3 adapter
    alone (``adapter``: bench_storage's rows, measured against the same gateway in this run),
    so that the cost of the gRPC hop and the service shows apart from the adapter's."""
    out: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        alone = adapter.get(_ADAPTER_ROWS.get(name, ""))
        if alone is None:
            out[name] = dict(row)
            continue
        unit = row["unit"]
        needed = GOAL.target * row["baseline"]
        reason = (
            f"needs {number(needed)} {unit}; through the service {number(row['value'])}"
            f" {unit} = {row['ratio']:.2f}× the SDK's {number(row['baseline'])}; the S3 adapter"
            f" alone {number(alone['value'])} {unit} = {alone['ratio']:.2f}× the SDK's"
            f" {number(alone['baseline'])} in the same run: the gRPC hop and the service keep"
            f" {row['ratio'] / alone['ratio']:.0%} of the adapter's ratio to the SDK"
        )
        out[name] = dict(judged(result(row["value"], row["baseline"], unit), GOAL, reason))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class _DirectParts:
    """The parts of the direct rows' times, measured in the same run: ``upload`` (seconds of
    ``begin``, ``put``, ``complete``: the client's answer), ``download`` (``grant``, ``get``
    with the client's hashing, ``get_only`` without, ``sha256`` of the same bytes in the
    client), ``small`` (mean seconds of ``begin``, ``put``, ``complete`` per 100 KB upload); the
    SDK's GET of the large object and SHA-256 of as many bytes in the server's process; the
    SDK's GET of one small object and the removal of its versions (list + delete)."""

    megabytes: float
    small_kb: float
    upload: Mapping[str, Any]
    sdk_get_s: float
    server_sha256_s: float
    download: Mapping[str, Any]
    small: Mapping[str, Any]
    sdk_small_get_s: float
    sdk_discard_s: float


def judge_direct(
    rows: Mapping[str, Mapping[str, Any]], parts: _DirectParts
) -> dict[str, dict[str, Any]]:
    """The direct rows with their goal; a missed one's reason sets out where its time went,
    step by step, beside what the same steps cost through the SDK in this run."""
    mb, ms = number(parts.megabytes), 1000.0

    def s(x: float) -> str:
        return f"{number(x)} s"

    def msec(x: float) -> str:
        return f"{number(x * ms)} ms"

    def head(row: Mapping[str, Any]) -> str:
        unit = row["unit"]
        return (
            f"needs {number(GOAL.target * row['baseline'])} {unit}; direct {number(row['value'])}"
            f" {unit} = {row['ratio']:.2f}× the SDK's {number(row['baseline'])}"
        )

    up_row = rows["documents.direct_upload_100mb"]
    up = parts.upload
    sdk_put_s = parts.megabytes / up_row["baseline"]
    up_reason = (
        f"{head(up_row)}: BeginDirectUpload {msec(up['begin'])}, the presigned PUT {s(up['put'])}"
        f" ({sdk_put_s / up['put']:.2f}× the SDK's put, {s(sdk_put_s)}), CompleteDirectUpload"
        f" {s(up['complete'])}: the server reads the staged {mb} MB back and hashes it (the"
        " gateway does not check x-amz-checksum-sha256), and in this run an SDK GET of them"
        f" takes {s(parts.sdk_get_s)} and SHA-256 of them {s(parts.server_sha256_s)}"
    )
    down_row = rows["documents.direct_download_100mb"]
    down = parts.download
    down_reason = (
        f"{head(down_row)}: GetDownloadUrl {msec(down['grant'])}, the GET hashed as it comes"
        f" {s(down['get'])}; the GET alone without hashing {s(down['get_only'])}"
        f" ({parts.sdk_get_s / down['get_only']:.2f}× the SDK's {s(parts.sdk_get_s)}), SHA-256"
        f" of the same {mb} MB in the client {s(down['sha256'])}"
        f" ({number(parts.megabytes / down['sha256'])} MB/s): the client hashes what it"
        " receives, the SDK does not"
    )
    small_row = rows["documents.direct_put_100kb"]
    small = parts.small
    sdk_put = 1 / small_row["baseline"]
    rest = small["complete"] - parts.sdk_small_get_s - sdk_put
    small_reason = (
        f"{head(small_row)}: one direct put takes BeginDirectUpload {msec(small['begin'])} +"
        f" the presigned PUT {msec(small['put'])} + CompleteDirectUpload"
        f" {msec(small['complete'])}, against {msec(sdk_put)} for one SDK put; the completion"
        f" reads the staged object back (an SDK GET of {number(parts.small_kb)} KB:"
        f" {msec(parts.sdk_small_get_s)}) and puts it again (an SDK put: {msec(sdk_put)}),"
        f" leaving {msec(rest)} for the catalogue row, the ledger event and the call; after"
        f" the answer it removes the staging versions (list + delete: {msec(parts.sdk_discard_s)})"
    )
    reasons = {
        "documents.direct_upload_100mb": up_reason,
        "documents.direct_download_100mb": down_reason,
        "documents.direct_put_100kb": small_reason,
    }
    return {
        name: dict(
            judged(
                result(rows[name]["value"], rows[name]["baseline"], rows[name]["unit"]),
                GOAL,
                reason,
            )
        )
        for name, reason in reasons.items()
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        print(json.dumps(_client(sys.argv[2:])))
    else:
        print(json.dumps(run(), indent=2))
