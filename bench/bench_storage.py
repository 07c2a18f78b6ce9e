"""Storage benchmark: the S3 adapter against the minio SDK straight to the same endpoint.

Measured in one run, on one gateway: 100 MB upload and download (MB/s) and 100 KB puts per
second. The baseline is the bare SDK (``put_object``/``get_object``) doing the same transfer;
``ratio`` = adapter / SDK (higher is better; the issue's goal is ≥ 0.8 for the service layer).
The adapter does more than the SDK by design: it hashes, spools (to learn the content address
before uploading), checks for existing content and stats the result; reads are verified.

``run()`` starts its own Ceph RADOS Gateway in a temporary directory unless an endpoint and
keys are given. ``python -m bench.bench_storage`` prints the result.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from minio import Minio

from kyso.dev.rgw import RadosGateway
from storage import S3Config, S3Credentials, S3Store

__all__ = ["measure", "run"]

MB = 1_000_000


def _data(size: int) -> bytes:
    seed = uuid.uuid4().bytes
    block = hashlib.sha512(seed).digest() * (1024 * 1024 // 64)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += i.to_bytes(8, "big") + block[8:]
        i += 1
    return bytes(out[:size])


def _best(times: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _entry(value: float, unit: str, baseline: float) -> dict[str, float | str]:
    return {"value": value, "unit": unit, "baseline": baseline, "ratio": value / baseline}


def run(
    endpoint: str | None = None,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    large_bytes: int = 100 * MB,
    small_bytes: int = 100 * 1000,
    small_count: int = 200,
) -> dict[str, dict[str, float | str]]:
    """Run the benchmark; start a throw-away gateway when ``endpoint`` is None."""
    gateway = None
    if endpoint is None:
        gateway = RadosGateway(Path(tempfile.mkdtemp(prefix="kyso-bench-rgw-")))
        gateway.start()
        user = gateway.create_user("bench")
        endpoint, access_key, secret_key = gateway.endpoint, user.access_key, user.secret_key
    assert access_key is not None
    assert secret_key is not None
    try:
        return measure(endpoint, access_key, secret_key, large_bytes, small_bytes, small_count)
    finally:
        if gateway is not None:
            gateway.stop()
            shutil.rmtree(gateway.workdir, ignore_errors=True)


def measure(
    endpoint: str,
    access_key: str,
    secret_key: str,
    large_bytes: int,
    small_bytes: int,
    small_count: int,
) -> dict[str, dict[str, float | str]]:
    """The three rows against a running gateway (bench_documents also calls it, to set the
    service beside the adapter alone in one run)."""
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    store = S3Store(
        S3Config(endpoint=endpoint, bucket=bucket, secure=False),
        credentials=S3Credentials(access_key=access_key, secret_key=secret_key),
    )
    store.check()  # creates the bucket (versioned)
    sdk = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False)
    part = store.config.part_size

    # 100 MB, fresh content each round so that the adapter never short-cuts an existing object.
    large = [_data(large_bytes) for _ in range(2)]
    refs: list[str] = []
    rounds = iter(range(2))

    def adapter_put() -> None:
        data = large[next(rounds)]
        refs.append(
            str(store.put(io.BytesIO(data), content_type="application/pdf", metadata={}).ref)
        )

    sdk_keys = iter(range(100))

    def sdk_put() -> None:
        sdk.put_object(
            bucket, f"sdk/{next(sdk_keys)}", io.BytesIO(large[0]), large_bytes, part_size=part
        )

    sdk_put_s = _best(2, sdk_put)
    adapter_put_s = _best(2, adapter_put)

    def adapter_get() -> None:
        with store.open(refs[0]) as reader:
            for _ in reader.chunks():
                pass

    def sdk_get() -> None:
        response = sdk.get_object(bucket, "sdk/0")
        try:
            for _ in response.stream(1024 * 1024):
                pass
        finally:
            response.close()
            response.release_conn()

    sdk_get_s = _best(3, sdk_get)
    adapter_get_s = _best(3, adapter_get)

    small = [os.urandom(small_bytes) for _ in range(small_count)]
    start = time.perf_counter()
    for i, blob in enumerate(small):
        sdk.put_object(bucket, f"sdk-small/{i}", io.BytesIO(blob), len(blob))
    sdk_small = small_count / (time.perf_counter() - start)
    small = [os.urandom(small_bytes) for _ in range(small_count)]
    start = time.perf_counter()
    for blob in small:
        store.put(io.BytesIO(blob), content_type="application/pdf", metadata={})
    adapter_small = small_count / (time.perf_counter() - start)

    mb = large_bytes / MB
    return {
        "storage.s3.upload_100mb": _entry(mb / adapter_put_s, "MB/s", mb / sdk_put_s),
        "storage.s3.download_100mb": _entry(mb / adapter_get_s, "MB/s", mb / sdk_get_s),
        "storage.s3.put_100kb": _entry(adapter_small, "puts/s", sdk_small),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
