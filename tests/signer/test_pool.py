"""Signing in worker processes: same documents, same errors, recovery from a dead worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest

from hsm import KeySpec, PinSource, PinSourceError, Pkcs11Uri
from signer import (
    AppearanceKind,
    FieldNotFound,
    Level,
    NotAPdf,
    PdfSigningService,
    RectangleInvalid,
    SignerSettings,
    SignRequest,
    UnknownKeyAlias,
)
from signer.pool import SignerUnavailable, SigningPool
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.conftest import ALIASES, load_cert, profiles
from tests.signer.pdfgen import make_pdf

SEAL_RECT = (300.0, 650.0, 560.0, 740.0)


def _specs(dev_env, *, pin_path=None) -> list[KeySpec]:
    return [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(dev_env.keys[alias].uri),
            pin=PinSource.from_file(pin_path or dev_env.keys[alias].pin_path),
            module_path=str(dev_env.module_path),
            chain_files=(dev_env.intermediate_certificate_path,),
        )
        for alias in ALIASES
    ]


@pytest.fixture(scope="module")
def pooled(dev_env):
    settings = SignerSettings(
        tsa_urls=(dev_env.tsa_url,),
        tsa_timeout=5.0,
        trust_roots=(load_cert(dev_env.root_certificate_path),),
    )
    with PdfSigningService(
        keys=profiles(dev_env), settings=settings, key_specs=_specs(dev_env), workers=2
    ) as service:
        yield service


@pytest.fixture(scope="module")
def nss(tmp_path_factory, dev_env):
    return nss_db(tmp_path_factory.mktemp("nss") / "db", dev_env.root_certificate_path)


def _seal(level: Level = Level.B_B, pdf: bytes | None = None) -> SignRequest:
    return SignRequest(
        pdf=pdf or make_pdf(),
        alias="seal",
        level=level,
        appearance=AppearanceKind.SEAL,
        page=1,
        rect=SEAL_RECT,
        reason="Đóng dấu văn bản",
    )


async def test_the_pool_runs_one_process_per_worker(pooled):
    assert pooled.workers == 2
    pids = pooled.worker_pids()
    assert len(set(pids)) == 2
    assert os.getpid() not in pids


@pytest.mark.parametrize("level", [Level.B_B, Level.B_LT])
async def test_pooled_signatures_validate_like_in_process_ones(
    pooled, dev_env, nss, tmp_path, level
):
    signed = await pooled.sign(_seal(level))
    (status,) = await validate(signed.pdf, load_cert(dev_env.root_certificate_path), level=level)
    assert status.signing_cert.subject.native["common_name"] == dev_env.organisation.name
    assert signed.level is level
    out = tmp_path / "pooled.pdf"
    out.write_bytes(signed.pdf)
    assert pdfsig(out, nss)[0]["Signature Validation"] == "Signature is Valid."


async def test_many_requests_at_once_all_validate(pooled, dev_env):
    """Both workers sign concurrently (each with its own PKCS#11 session); none is lost."""
    requests = [
        _seal() if i % 2 else SignRequest(pdf=make_pdf(), alias="seal-ec", reason=f"lần {i}")
        for i in range(24)
    ]
    signed = await asyncio.gather(*(pooled.sign(r) for r in requests))
    root = load_cert(dev_env.root_certificate_path)
    for doc in signed:
        await validate(doc.pdf, root, level=Level.B_B)
    assert len({doc.sha256 for doc in signed}) == len(signed)


@pytest.mark.parametrize(
    ("request_", "error", "field"),
    [
        (SignRequest(pdf=b"not a pdf", alias="seal"), NotAPdf, "document"),
        (SignRequest(pdf=make_pdf(), alias="nope"), UnknownKeyAlias, "key_alias"),
        (
            SignRequest(pdf=make_pdf(), alias="seal", field_name="Missing"),
            FieldNotFound,
            "field_name",
        ),
        (
            # (without a rect the seal takes the default place; a box too small is refused)
            SignRequest(
                pdf=make_pdf(), alias="seal", appearance=AppearanceKind.SEAL, rect=(10, 10, 30, 20)
            ),
            RectangleInvalid,
            "rect",
        ),
    ],
    ids=["not-a-pdf", "alias", "field", "seal-too-small"],
)
async def test_errors_keep_their_class_message_and_field(pooled, service, request_, error, field):
    with pytest.raises(error) as remote:
        await pooled.sign(request_)
    with pytest.raises(error) as local:
        await service.sign(request_)
    assert str(remote.value) == str(local.value)
    assert remote.value.field == field


async def test_an_instance_field_crosses_the_boundary(pooled):
    pdf = (await pooled.sign(SignRequest(pdf=make_pdf(), alias="seal", field_name="A", page=1))).pdf
    with pytest.raises(FieldNotFound) as caught:
        await pooled.sign(SignRequest(pdf=pdf, alias="seal", field_name="A", page=1))
    assert caught.value.field == "field_name"  # set on the instance, not the class default


def test_a_start_failure_is_the_workers_precise_error(dev_env, tmp_path):
    missing = tmp_path / "no-such.pin"
    with pytest.raises(PinSourceError, match="cannot read the PIN file"):
        PdfSigningService(
            keys=profiles(dev_env),
            settings=SignerSettings(),
            key_specs=_specs(dev_env, pin_path=missing),
            workers=1,
        )


def test_prompt_pins_are_refused_before_starting(dev_env):
    specs = [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(dev_env.keys[alias].uri),
            pin=PinSource.prompt(),
            module_path=str(dev_env.module_path),
        )
        for alias in ALIASES
    ]
    with pytest.raises(ValueError, match="prompt"):
        PdfSigningService(
            keys=profiles(dev_env), settings=SignerSettings(), key_specs=specs, workers=1
        )


@pytest.mark.slow
async def test_a_killed_worker_fails_its_request_and_is_replaced(dev_env):
    with PdfSigningService(
        keys=profiles(dev_env), settings=SignerSettings(), key_specs=_specs(dev_env), workers=1
    ) as service:
        (pid,) = service.worker_pids()
        # One worker signs one request at a time: most of these are still queued at the kill.
        in_flight = [
            asyncio.ensure_future(service.sign(SignRequest(pdf=make_pdf(), alias="seal")))
            for _ in range(20)
        ]
        await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert failed
        assert all(isinstance(o, SignerUnavailable) for o in failed), failed
        for _ in range(200):  # restarted in the background (a new interpreter and key ring)
            (new_pid,) = service.worker_pids()
            if new_pid is not None and new_pid != pid:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the killed worker was not restarted within 20 s")
        signed = await service.sign(_seal())
        await validate(signed.pdf, load_cert(dev_env.root_certificate_path), level=Level.B_B)


@pytest.fixture
def silent_tsa():
    """A time-stamping authority that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections wait in the backlog: requests are sent, never read
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/tsa"


async def _wait_for(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_hung_worker_is_replaced_and_only_its_request_fails(dev_env, silent_tsa):
    """A worker stuck on a TSA that never answers is killed at its deadline; the other worker
    signs all the while; the replaced worker signs again."""
    settings = SignerSettings(
        tsa_urls=(silent_tsa,),
        tsa_timeout=3600.0,  # the TSA client would wait an hour: only the watchdog ends it
        trust_roots=(load_cert(dev_env.root_certificate_path),),
    )
    root = load_cert(dev_env.root_certificate_path)
    with SigningPool(
        key_specs=_specs(dev_env),
        profiles=profiles(dev_env),
        settings=settings,
        workers=2,
        request_timeout=5.0,
    ) as pool:
        first, second = pool.pids()
        hung = asyncio.ensure_future(
            pool.sign(SignRequest(pdf=make_pdf(), alias="seal", level=Level.B_T))
        )
        await asyncio.sleep(0)  # one loop turn: the request is now on worker 0
        for _ in range(3):  # worker 1, the least busy, signs while worker 0 hangs
            signed = await pool.sign(_seal())
            await validate(signed.pdf, root, level=Level.B_B)
        with pytest.raises(SignerUnavailable, match="did not finish within 5 s and was replaced"):
            await hung
        await _wait_for(lambda: pool.pids()[0] not in (None, first), "worker 0 replaced")
        assert pool.pids()[1] == second
        for _ in range(2):  # both workers serve again (the least busy takes each)
            signed = await pool.sign(_seal())
            await validate(signed.pdf, root, level=Level.B_B)
