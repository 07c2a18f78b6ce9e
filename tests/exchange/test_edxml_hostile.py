"""Hostile input: every case ends in a clean PackageInvalid (or subclass), quickly, with no I/O."""

from __future__ import annotations

import base64
import io
import struct
import zipfile

import pytest
from lxml import etree

from exchange import AttachmentTooLarge, PackageInvalid, PackageTooLarge
from exchange.edxml import Limits, TrustPolicy, build_package, open_package, safexml
from exchange.edxml.safexml import parse_xml
from tests.exchange.conftest import simple_package

LENIENT = TrustPolicy(require_signature=False)
E = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def _with_attachment(payload: bytes, *, name: str = "vb.pdf") -> bytes:
    data = build_package(simple_package(), key=None)
    attachment = (
        f"<edXML:AttachmentEncoded><edXML:Attachment><edXML:ContentId>a</edXML:ContentId>"
        f"<edXML:AttachmentName>{name}</edXML:AttachmentName><edXML:ContentTransferEncoded>"
        f"{base64.b64encode(payload).decode()}</edXML:ContentTransferEncoded></edXML:Attachment>"
        f"</edXML:AttachmentEncoded></edXML:edXML>"
    ).encode()
    return data.replace(b"</edXML:edXML>", attachment)


def _zip_bomb(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("vb.pdf", b"\0" * size)
    return buffer.getvalue()


def _lying_zip(real: int, claimed: int) -> bytes:
    """A ZIP whose headers claim ``claimed`` bytes while the entry inflates to ``real``."""
    data = bytearray(_zip_bomb(real))
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, claimed)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, claimed)
    return bytes(data)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<edXML><edXMLEnvelope><edXMLHeader><MessageHeader><Subject>&lol9;</Subject></MessageHeader>
</edXMLHeader></edXMLEnvelope></edXML>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<edXML><edXMLEnvelope><edXMLHeader><MessageHeader><Subject>&xxe;</Subject></MessageHeader>
</edXMLHeader></edXMLEnvelope></edXML>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/evil.dtd">
<edXML><edXMLEnvelope/></edXML>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]><edXML/>"""

UTF16_DOCTYPE = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><edXML/>'.encode("utf-16")
)


def _deep(levels: int) -> bytes:
    return b"<edXML>" + b"<a>" * levels + b"</a>" * levels + b"</edXML>"


def _wide(elements: int) -> bytes:
    return b"<edXML>" + b"<a/>" * elements + b"</edXML>"


SMALL = Limits(max_package_bytes=200_000, max_attachment_bytes=100_000, max_elements=1_000)

CORPUS = [
    pytest.param(BILLION_LAUGHS, PackageInvalid, "DOCTYPE", id="billion-laughs"),
    pytest.param(EXTERNAL_ENTITY, PackageInvalid, "DOCTYPE", id="external-entity"),
    pytest.param(EXTERNAL_DTD, PackageInvalid, "DOCTYPE", id="external-dtd"),
    pytest.param(PARAMETER_ENTITY, PackageInvalid, "DOCTYPE", id="parameter-entity"),
    pytest.param(UTF16_DOCTYPE, PackageInvalid, "UTF-8", id="utf16-hides-doctype"),
    pytest.param(_deep(25_000), PackageInvalid, "not well-formed|deeper", id="very-deep-nesting"),
    pytest.param(_deep(40), PackageInvalid, "deeper than 24 levels", id="deeper-than-limit"),
    pytest.param(_wide(5_000), PackageInvalid, "more than 1000 elements", id="too-many-elements"),
    pytest.param(
        b'<edXML a="' + b"x" * 150_000 + b'"/>',
        PackageInvalid,
        "longer than 4096",
        id="huge-attribute",
    ),
    pytest.param(
        b"<edXML>" + b" " * 300_000 + b"</edXML>",
        PackageTooLarge,
        "over the limit",
        id="oversized-package",
    ),
    pytest.param(
        _with_attachment(b"%PDF" * 30_000),
        AttachmentTooLarge,
        "over the limit",
        id="oversized-attachment",
    ),
    pytest.param(
        _with_attachment(_zip_bomb(20_000_000)), AttachmentTooLarge, "unpacks to", id="zip-bomb"
    ),
    pytest.param(
        _with_attachment(_lying_zip(5_000_000, 1_000)),
        PackageInvalid,  # zipfile reads no more than the declared size, then the CRC fails
        "damaged ZIP",
        id="zip-bomb-lying-sizes",
    ),
    pytest.param(
        _with_attachment(b"PK\x03\x04" + b"garbage" * 10),
        PackageInvalid,
        "damaged ZIP",
        id="broken-zip",
    ),
    pytest.param(b"<edXML><unclosed></edXML>", PackageInvalid, "not well-formed", id="malformed"),
    pytest.param(b"", PackageInvalid, "not well-formed", id="empty"),
    pytest.param(b"\x89PNG\r\n\x1a\n", PackageInvalid, "not well-formed", id="not-xml"),
    pytest.param(b"<other/>", PackageInvalid, "root element is other", id="wrong-root"),
]


@pytest.mark.parametrize(("data", "error", "message"), CORPUS)
def test_hostile_input_is_refused_cleanly(
    data: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        open_package(data, policy=LENIENT, limits=SMALL)


def test_entities_are_never_expanded_even_past_the_pre_check() -> None:
    """Belt and braces: the parser itself resolves no entity and loads no DTD."""
    from exchange.edxml.safexml import _parser

    parser = _parser()
    from lxml import etree

    root = etree.fromstring(EXTERNAL_ENTITY, parser=parser)
    assert "root:" not in "".join(root.itertext())


def test_an_over_long_document_id_is_refused_naming_the_field_and_the_limit() -> None:
    data = build_package(simple_package(document_id="x" * 70_000), key=None)
    with pytest.raises(PackageInvalid, match="at most 255") as caught:
        open_package(data, policy=LENIENT)
    assert caught.value.field.endswith("MessageHeader/DocumentId")


def test_too_many_attachments_are_refused_before_any_is_decoded() -> None:
    data = build_package(simple_package(), key=None)
    one = (
        "<edXML:Attachment><edXML:ContentId>a{n}</edXML:ContentId>"
        "<edXML:ContentTransferEncoded>aGk=</edXML:ContentTransferEncoded></edXML:Attachment>"
    )
    many = "".join(one.format(n=n) for n in range(Limits().max_attachments + 1))
    data = data.replace(
        b"</edXML:edXML>",
        f"<edXML:AttachmentEncoded>{many}</edXML:AttachmentEncoded></edXML:edXML>".encode(),
    )
    with pytest.raises(PackageInvalid, match="at most 200 are accepted") as caught:
        open_package(data, policy=LENIENT)
    assert caught.value.field.endswith("/Attachment")


# -- limits enforced while parsing (issue 14, observation 3) --------------------------------

_PEAK_OF_A_PARSE = """
import sys
from exchange.edxml.safexml import Limits, parse_xml
from exchange.errors import PackageInvalid

data = sys.stdin.buffer.read()
try:
    parse_xml(data, limits=Limits())
except PackageInvalid as exc:
    print(exc)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


@pytest.mark.parametrize(
    ("bomb", "said"),
    [
        (b"<a>" + b"<b/>" * 8_000_000 + b"</a>", "more than 50000 elements"),
        (b"<a>" * 2_000_000 + b"</a>" * 2_000_000, "deeper than 24 levels"),
    ],
    ids=["wide", "deep"],
)
def test_a_package_over_the_limits_stops_the_parse_at_the_first_excess(bomb, said) -> None:
    """32 MB of elements: refused while parsing, in a process whose peak memory stays near its
    input, where building the whole tree first took about 1 GB."""
    import subprocess
    import sys

    assert len(bomb) <= Limits().max_package_bytes
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_A_PARSE],
        input=bomb,
        capture_output=True,
        check=True,
        timeout=120,
    )
    message, peak = done.stdout.decode().strip().splitlines()
    assert said in message
    # The input, its copy through stdin and the interpreter: well under twice the input on top
    # of an idle interpreter (~100 MB with lxml and the exchange package loaded).
    assert int(peak) < 100 * 1024 * 1024 + 2 * len(bomb), f"peak {int(peak) / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "document",
    [
        b"<r/>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<r a="x &gt; y"><b>t</b><c/></r>',
        b'\xef\xbb\xbf<?xml version="1.0"?><r><b x=">"/><b/>text &lt; more</r>',
        b"<r>" + b"<a><b/></a>" * 500 + b"</r>",
    ],
)
def test_the_element_count_told_from_the_bytes_is_the_parsers(document: bytes) -> None:
    told = safexml._start_tags(document)
    parsed = etree.fromstring(document)
    assert told == sum(1 for _ in parsed.iter())


@pytest.mark.parametrize(
    "document",
    [
        b"<r><!-- <a/><a/><a/> --></r>",
        b"<r><![CDATA[<a/><a/><a/>]]></r>",
        b"<r><?pi <a/><a/>?></r>",
    ],
)
def test_comments_cdata_and_instructions_leave_the_count_to_the_parse(document: bytes) -> None:
    assert safexml._start_tags(document) is None
    # Their '<' are not elements: with a limit of two, such a package still parses.
    assert parse_xml(document, limits=Limits(max_elements=2)).tag == "r"


def test_a_flood_of_elements_is_refused_from_the_bytes_before_any_parse() -> None:
    flood = b"<r>" + b"<a/>" * 1_000_000 + b"</r>"
    with pytest.raises(PackageInvalid, match="more than 50000 elements"):
        parse_xml(flood, limits=Limits())
    assert safexml._start_tags(flood) == 1_000_001
