"""RFC 7512 URI parsing and printing, and PIN sources."""

from __future__ import annotations

import pytest

from hsm import InvalidUri, PinSource, PinSourceError, Pkcs11Uri


def test_parses_path_and_query_attributes():
    uri = Pkcs11Uri.parse(
        "pkcs11:token=kyso-dev;serial=abc123;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;"
        "object=seal;id=%01%Ab;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
        "&pin-source=env:KYSO_PIN"
    )
    assert uri.token == "kyso-dev"
    assert uri.serial == "abc123"
    assert uri.manufacturer == "SoftHSM project"
    assert uri.model == "SoftHSM v2"
    assert uri.object == "seal"
    assert uri.id == b"\x01\xab"
    assert uri.type == "private"
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.pin_source == "env:KYSO_PIN"


def test_percent_encoded_utf8_and_reserved_characters():
    uri = Pkcs11Uri.parse("pkcs11:token=S%E1%BB%9F%20T%C6%B0%20ph%C3%A1p;object=a%3Bb%2Fc")
    assert uri.token == "Sở Tư pháp"
    assert uri.object == "a;b/c"
    again = Pkcs11Uri.parse(str(uri))
    assert again == uri


def test_canonical_form_orders_attributes_and_encodes_id():
    uri = Pkcs11Uri.parse("PKCS11:type=private;object=seal;token=dev;id=%0a?module-path=/m.so")
    assert str(uri) == "pkcs11:token=dev;object=seal;id=%0A;type=private?module-path=/m.so"


def test_empty_uri_and_empty_values():
    assert Pkcs11Uri.parse("pkcs11:") == Pkcs11Uri()
    assert Pkcs11Uri.parse("pkcs11:object=").object == ""


def test_vendor_attributes_are_kept():
    uri = Pkcs11Uri.parse("pkcs11:token=a;x-slot=3?x-opt=yes")
    assert uri.vendor_path == (("x-slot", "3"),)
    assert uri.vendor_query == (("x-opt", "yes"),)


def test_pin_value_is_never_printed():
    uri = Pkcs11Uri.parse("pkcs11:token=a;object=k?pin-value=s3cr3t-PIN")
    assert uri.pin_value == "s3cr3t-PIN"
    assert "s3cr3t" not in str(uri)
    assert "s3cr3t" not in repr(uri)


def test_pin_value_not_echoed_in_errors():
    with pytest.raises(InvalidUri) as info:
        Pkcs11Uri.parse("pkcs11:token=a;bogus=1?pin-value=s3cr3t-PIN")
    assert "s3cr3t" not in str(info.value)
    assert "bogus" in str(info.value)


@pytest.mark.parametrize(
    ("text", "names", "position"),
    [
        ("http:token=a", "pkcs11:", 0),
        ("pkcs11token=a", "pkcs11:", 0),
        ("pkcs11:token=a;objet=b", "'objet'", 15),
        ("pkcs11:token=a;token=b", "twice", 15),
        ("pkcs11:token=a;;object=b", "empty path attribute", 15),
        ("pkcs11:token", "no '=VALUE'", 7),
        ("pkcs11:=a", "without a name", 7),
        ("pkcs11:id=%G1", "'%G1'", 10),
        ("pkcs11:id=%1", "'%1'", 10),
        ("pkcs11:type=key", "type 'key'", 12),
        ("pkcs11:token=a b", "' '", 14),
        ("pkcs11:token=a/b", "'/'", 14),
        ("pkcs11:slot-id=x1", "slot-id", 15),
        ("pkcs11:library-version=1.a", "library-version", 23),
        ("pkcs11:token=%FF", "UTF-8", 13),
        ("pkcs11:token=a?", "query", 14),
        ("pkcs11:token=a?token=b", "belongs in the path", 15),
        ("pkcs11:module-path=/x", "belongs in the query", 7),
        ("pkcs11:token=a?module-path=/x&&pin-source=f", "empty query attribute", 30),
        ("pkcs11:token=a#frag", "fragment", 14),
    ],
)
def test_malformed_uri_names_the_bad_part(text, names, position):
    with pytest.raises(InvalidUri) as info:
        Pkcs11Uri.parse(text)
    assert names in str(info.value)
    assert info.value.position == position


def test_pin_source_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("KYSO_TEST_PIN", "1234")
    assert PinSource.parse("env:KYSO_TEST_PIN").read() == "1234"
    pin_file = tmp_path / "pin"
    pin_file.write_text("5678\n")
    pin_file.chmod(0o600)
    assert PinSource.parse(f"file:{pin_file}").read() == "5678"
    assert PinSource.parse(str(pin_file)).read() == "5678"
    assert PinSource.parse("prompt").kind == "prompt"


def test_pin_source_errors_do_not_leak(tmp_path, monkeypatch):
    monkeypatch.delenv("KYSO_NO_SUCH_PIN", raising=False)
    with pytest.raises(PinSourceError, match="KYSO_NO_SUCH_PIN"):
        PinSource.from_env("KYSO_NO_SUCH_PIN").read()
    with pytest.raises(PinSourceError, match="cannot read"):
        PinSource.from_file(tmp_path / "missing").read()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(PinSourceError, match="empty"):
        PinSource.from_file(empty).read()
    with pytest.raises(PinSourceError, match="not understood"):
        PinSource.parse("1234")
    assert "1234" not in str(PinSource.from_env("X"))
