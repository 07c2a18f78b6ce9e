"""kyso's remote-signing drivers in two-phase sessions: through kyso's own CSC facade (v2 and
v1.0.4 spellings) and through a local stand-in of an asynchronous SmartCA-style gateway —
approval, rejection, expiry, a count mismatch, a batch of 20 in one approval, a restart while
waiting. Results are PAdES B-LT checked by pyHanko (offline, from the DSS) and pdfsig."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from kyso.app import Application
from kyso.authz import Identity
from kyso.config import Config, load_config
from kyso.csc.serve import FacadeServer
from kyso.dev.responders import free_port
from kyso.errors import FailedPrecondition
from kyso.operations.documents import Documents, DocumentSource
from kyso.operations.remote import RemotePoller, RemoteSigning, remote_providers
from kyso.operations.twophase import TwoPhase
from signer import Level
from signer.schema import remote_requests, sessions
from signer.twophase import RemoteState, SessionState
from tests.signer.checks import nss_db, pdfsig, validate
from tests.signer.pdfgen import make_pdf

from .conftest import SP_ID, facade_config_text
from .smartca_standin import SmartCaStandIn
from .test_facade import root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def remote_config(dev_env, tmp_path: Path, standin: SmartCaStandIn) -> Config:
    port = free_port()
    (tmp_path / "sp.secret").write_text(standin.sp_password)
    extra = f"""
[remote.kyso]
kind = "csc"
url = "http://127.0.0.1:{port}"
client_id = "dev"
client_secret_file = "{dev_env.api_token_path}"
approval_seconds = 120

[remote.kyso-v1]
kind = "csc"
api_version = "v1"
url = "http://127.0.0.1:{port}"
client_id = "dev"
client_secret_file = "{dev_env.api_token_path}"

[remote.smartca]
kind = "smartca"
url = "{standin.url}"
client_id = "{SP_ID}"
client_secret_file = "{tmp_path / "sp.secret"}"
approval_seconds = 120
poll_seconds = 0.05
multisign = 25
"""
    path = tmp_path / "kyso.toml"
    text = facade_config_text(dev_env, tmp_path, extra).replace(
        'address = "127.0.0.1:0"\nsad_seconds', f'address = "127.0.0.1:{port}"\nsad_seconds'
    )
    path.write_text(text)
    return load_config(path)


class Service:
    """The application with its remote-signing operation (opened and closed by the tests)."""

    def __init__(self, config: Config) -> None:
        self.app = Application.open(config)
        self.documents = Documents(self.app)
        self.remote = RemoteSigning(
            self.app, TwoPhase(self.app, self.documents), remote_providers(config)
        )
        self.actor = Identity(
            name="dev", unit=config.clients["dev"].unit, roles=frozenset({"workflow"})
        )

    def close(self) -> None:
        self.app.close()


def docs(count: int) -> list[DocumentSource]:
    return [
        DocumentSource(content=make_pdf(), filename=f"quyet-dinh-{i}.pdf") for i in range(count)
    ]


async def check_blt(service: Service, outcome, dev_env, tmp_path: Path, nss: Path) -> None:
    assert outcome.request.state is RemoteState.COMPLETED
    for i, completed in enumerate(outcome.completed):
        assert completed.level is Level.B_LT
        pdf = service.documents.read_whole(str(completed.stored.ref))
        await validate(pdf, root(dev_env), level=Level.B_LT)
        path = tmp_path / f"remote-{outcome.request.id}-{i}.pdf"
        path.write_bytes(pdf)
        [report] = pdfsig(path, nss)
        assert report["Signature Validation"] == "Signature is Valid.", report


def states(service: Service, request_id: str) -> list[str]:
    with service.app.engine.connect() as conn:
        ids = conn.execute(
            sa.select(remote_requests.c.session_ids).where(remote_requests.c.id == request_id)
        ).scalar_one()
        return [
            conn.execute(sa.select(sessions.c.state).where(sessions.c.id == i)).scalar_one()
            for i in ids.split(",")
        ]


async def test_through_kyso_facade(remote_config, dev_env, tmp_path):
    nss = nss_db(tmp_path / "nss", dev_env.root_certificate_path)
    service = Service(remote_config)
    facade = FacadeServer(service.app)
    await facade.start()
    try:
        for provider in ("kyso", "kyso-v1"):
            outcome = await service.remote.request(
                service.actor, provider_name=provider, user="seal", documents=docs(2)
            )
            assert len(outcome.completed) == 2
            await check_blt(service, outcome, dev_env, tmp_path, nss)
            assert states(service, outcome.request.id) == ["completed", "completed"]
    finally:
        await facade.stop()
        service.close()


async def test_through_async_provider(remote_config, standin, dev_env, tmp_path):
    nss = nss_db(tmp_path / "nss", dev_env.root_certificate_path)
    service = Service(remote_config)
    user = standin.user
    try:
        # approved: a batch of 20 documents in ONE approval
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=user, documents=docs(20)
        )
        assert outcome.request.state is RemoteState.WAITING
        assert standin.sign_requests == 1
        assert set(states(service, outcome.request.id)) == {"waiting_approval"}
        assert (await service.remote.poll(service.actor, outcome.request.id)).request.state is (
            RemoteState.WAITING
        )
        await standin.approve(standin.only())
        done = await service.remote.wait(service.actor, outcome.request.id, interval=0.05)
        assert len(done.completed) == 20
        await check_blt(service, done, dev_env, tmp_path, nss)

        # rejected on the phone
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=user, documents=docs(2)
        )
        standin.reject(standin.only())
        done = await service.remote.wait(service.actor, outcome.request.id, interval=0.05)
        assert done.request.state is RemoteState.REJECTED
        assert states(service, outcome.request.id) == ["rejected", "rejected"]

        # expired at the provider, and by our own clock
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=user, documents=docs(1)
        )
        standin.expire(standin.only())
        done = await service.remote.poll(service.actor, outcome.request.id)
        assert done.request.state is RemoteState.EXPIRED
        assert states(service, outcome.request.id) == ["expired"]
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=user, documents=docs(1)
        )
        with service.app.engine.begin() as conn:
            conn.execute(
                remote_requests.update()
                .where(remote_requests.c.id == outcome.request.id)
                .values(
                    expires_us=int((datetime.now(UTC) - timedelta(seconds=1)).timestamp() * 1e6)
                )
            )
        done = await service.remote.poll(service.actor, outcome.request.id)
        assert done.request.state is RemoteState.EXPIRED
        standin.reject(standin.only())  # tidy the stand-in's pending list

        # a count mismatch fails the whole batch: nothing is completed, nothing stored
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=user, documents=docs(3)
        )
        standin.drop_one = True
        await standin.approve(standin.only())
        with pytest.raises(FailedPrecondition, match="failed as a whole"):
            await service.remote.poll(service.actor, outcome.request.id)
        standin.drop_one = False
        request = (await service.remote.poll(service.actor, outcome.request.id)).request
        assert request.state is RemoteState.FAILED
        assert states(service, outcome.request.id) == ["rejected"] * 3

        # the provider's secret never reached the database
        with service.app.engine.connect() as conn:
            for table in ("signing_remote_requests", "signing_sessions"):
                rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()  # noqa: S608
                assert standin.sp_password not in repr(rows)
    finally:
        service.close()


async def test_restart_while_waiting(remote_config, standin, dev_env, tmp_path):
    service = Service(remote_config)
    try:
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=standin.user, documents=docs(2)
        )
    finally:
        service.close()
    await standin.approve(standin.only())
    service = Service(remote_config)  # a new process would see the same: all is in the database
    try:
        [done] = await service.remote.poll_waiting(service.actor)
        assert done.request.id == outcome.request.id
        assert done.request.state is RemoteState.COMPLETED
        assert len(done.completed) == 2
        nss = nss_db(tmp_path / "nss", dev_env.root_certificate_path)
        await check_blt(service, done, dev_env, tmp_path, nss)
    finally:
        service.close()


async def test_poller_completes_without_anyone_polling(remote_config, standin, dev_env, tmp_path):
    """The server's background poller: a request made by another process (then closed), approved
    at the provider, completes with nobody calling poll; a pending one is asked again later."""
    service = Service(remote_config)
    try:
        outcome = await service.remote.request(
            service.actor, provider_name="smartca", user=standin.user, documents=docs(2)
        )
    finally:
        service.close()
    service = Service(remote_config)
    clock = [1000.0]
    stepped = RemotePoller(service.remote, remote_config, tick=0.05, clock=lambda: clock[0])
    poller = RemotePoller(service.remote, remote_config, tick=0.05)
    try:
        assert await stepped.run_once() == []  # pending: nothing settled
        asked = standin.status_requests
        assert await stepped.run_once() == []  # not due again before poll_seconds
        assert standin.status_requests == asked
        clock[0] += 0.06
        assert await stepped.run_once() == []  # due: asked again, then the interval doubles
        assert standin.status_requests == asked + 1
        clock[0] += 0.06
        assert await stepped.run_once() == []
        assert standin.status_requests == asked + 1
        assert states(service, outcome.request.id) == ["waiting_approval"] * 2
        await standin.approve(standin.only())
        poller.start()
        for _ in range(1200):
            if await service.remote.list(state=RemoteState.COMPLETED):
                break
            await asyncio.sleep(0.05)
        [request] = await service.remote.list(state=RemoteState.COMPLETED)
        assert request.id == outcome.request.id
        assert states(service, outcome.request.id) == ["completed"] * 2
    finally:
        await poller.stop()
        service.close()


def test_states_fit_the_column():
    width = sessions.c.state.type.length
    assert all(len(s.value) <= width for s in SessionState)
    assert all(len(s.value) <= remote_requests.c.state.type.length for s in RemoteState)
