"""Signing workers that read stored documents themselves (``sign_stored``)."""

from __future__ import annotations

import functools
import os
import stat

import pytest

import storage
from signer import Level, PdfSigningService, SignerSettings, SignRequest
from tests.signer.checks import validate
from tests.signer.conftest import load_cert, profiles
from tests.signer.pdfgen import make_pdf
from tests.signer.test_pool import _specs


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def reading(dev_env, store_root):
    settings = SignerSettings(
        tsa_urls=(dev_env.tsa_url,),
        tsa_timeout=5.0,
        trust_roots=(load_cert(dev_env.root_certificate_path),),
        max_document_size=2_000_000,
    )
    with PdfSigningService(
        keys=profiles(dev_env),
        settings=settings,
        key_specs=_specs(dev_env),
        workers=1,
        store=functools.partial(storage.FilesystemStore, store_root),
    ) as service:
        yield service


def _put(root, data: bytes) -> storage.StoredObject:
    return storage.FilesystemStore(root).put(data, content_type="application/pdf", metadata={})


async def test_the_worker_signs_a_document_it_reads_from_the_store(reading, dev_env, store_root):
    pdf = make_pdf()
    stored = _put(store_root, pdf)
    assert reading.reads_store
    signed, staged = await reading.sign_stored(
        SignRequest(pdf=b"", alias="seal", reason="từ kho"), str(stored.ref)
    )
    assert staged is None  # not asked for: the bytes come back
    assert signed.pdf.startswith(pdf)  # an incremental update of the stored bytes
    (status,) = await validate(
        signed.pdf, load_cert(dev_env.root_certificate_path), level=Level.B_B
    )
    assert status.signing_cert.subject.native["common_name"] == dev_env.organisation.name


async def test_a_missing_object_is_the_stores_not_found(reading):
    with pytest.raises(storage.ObjectNotFound):
        await reading.sign_stored(SignRequest(pdf=b"", alias="seal"), "sha256/" + "ab" * 32)


async def test_altered_stored_bytes_are_never_signed(reading, store_root):
    stored = _put(store_root, make_pdf(size=50_000))
    path = store_root / "objects" / stored.sha256[:2] / stored.sha256[2:4] / stored.sha256
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(storage.IntegrityError):
        await reading.sign_stored(SignRequest(pdf=b"", alias="seal"), str(stored.ref))


async def test_a_stored_document_over_the_limit_is_refused_before_it_is_read(reading, store_root):
    from signer import DocumentTooLarge

    stored = _put(store_root, make_pdf(size=2_500_000))
    with pytest.raises(DocumentTooLarge, match="the limit is 2,000,000 bytes"):
        await reading.sign_stored(SignRequest(pdf=b"", alias="seal"), str(stored.ref))


async def test_a_pool_without_a_store_cannot_sign_by_ref(dev_env):
    settings = SignerSettings(trust_roots=(load_cert(dev_env.root_certificate_path),))
    with PdfSigningService(
        keys=profiles(dev_env), settings=settings, key_specs=_specs(dev_env), workers=1
    ) as service:
        assert not service.reads_store
        with pytest.raises(ValueError, match="read the store"):
            await service.sign_stored(SignRequest(pdf=b"", alias="seal"), "sha256/" + "ab" * 32)


async def test_a_staged_signature_is_adopted_by_the_store_without_crossing_back(
    reading, store_root
):
    pdf = make_pdf()
    stored = _put(store_root, pdf)
    signed, staged = await reading.sign_stored(
        SignRequest(pdf=b"", alias="seal"), str(stored.ref), stage=True
    )
    assert signed.pdf == b""  # the bytes stayed in the worker's staging file
    assert staged is not None
    store = storage.FilesystemStore(store_root)
    [adopted] = storage.put_many(
        store, [storage.PutItem(source=staged, content_type="application/pdf")]
    )
    store.discard(staged)
    assert adopted.sha256 == signed.sha256 == staged.sha256
    with store.open(adopted.ref) as reader:
        assert reader.read().startswith(pdf)  # verified against its address on the way out
    assert not (store_root / "tmp").joinpath(staged.path).exists()
