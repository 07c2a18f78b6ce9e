"""The agent's prompt answers, PIN messages and message catalogue (issue 22).

The choice parser and the catalogue are pure functions. The PIN messages for a token's "final
try" and "locked" flags use a key double: SoftHSM (the token here) raises only the "count low"
flag and never locks, so those two states cannot come from the real token (the real one is
driven through a wrong PIN in test_agent_terminal.py)."""

from __future__ import annotations

import io

import pytest

import hsm
from kyso.cli.agent.choice import ALL, NONE, VIEW, parse_answer, parse_choice
from kyso.cli.agent.pin import LoginFailed, log_in
from kyso.cli.text import LANGUAGES, MESSAGES, STATE_WORDS, STATUS_WORDS, fold


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("tất cả", ALL),
        ("Tất Cả", ALL),
        ("tat ca", ALL),
        ("all", ALL),
        ("không", NONE),
        ("khong", NONE),
        ("", NONE),
        ("xem", VIEW),
        ("1, 3-4", [0, 2, 3]),
        ("1 3", [0, 2]),
        ("2–4", [1, 2, 3]),
    ],
)
def test_answers_as_people_type_them(typed, expected):
    assert parse_answer(typed, 4) == expected


@pytest.mark.parametrize("typed", ["0", "5", "2-1", "mọi thứ", "1,x"])
def test_a_wrong_answer_says_what_to_type(typed):
    with pytest.raises(ValueError, match="1 đến 4") as caught:
        parse_answer(typed, 4, "vi")
    assert "invalid literal" not in str(caught.value)


def test_the_old_parser_name_still_parses():
    assert parse_choice("1,3-4", 4) == [0, 2, 3]


def test_fold_removes_vietnamese_marks():
    assert fold("  Sở Y Tế  Đà Nẵng ") == "so y te da nang"


def test_every_message_has_both_languages():
    for catalogue in (MESSAGES, STATUS_WORDS, STATE_WORDS):
        for key, sentences in catalogue.items():
            assert set(sentences) == set(LANGUAGES), key
            assert all(sentences[lang].strip() for lang in LANGUAGES), key


class RefusingKey:
    """Refuses every PIN and reports the given token flags (see the module docstring)."""

    def __init__(self, state: hsm.PinState, *, locked_on_login: bool = False) -> None:
        self.state = state
        self.logins = 0
        self._locked = locked_on_login

    def login(self, pin: str) -> None:
        self.logins += 1
        if self._locked:
            raise hsm.PinLocked("locked")
        raise hsm.PinIncorrect("wrong")

    def pin_state(self) -> hsm.PinState:
        return self.state


class TypedPin:
    """A PIN typed at the prompt (``kind == "prompt"``): asked again once when wrong."""

    kind = "prompt"

    def read(self) -> str:
        return "000000"


def test_a_final_try_is_said_and_the_pin_asked_again_once_only():
    key = RefusingKey(hsm.PinState(count_low=True, final_try=True))
    err = io.StringIO()
    with pytest.raises(LoginFailed, match="nothing signed"):
        log_in(key, TypedPin(), lang="en", err=err)  # type: ignore[arg-type]
    assert key.logins == 2
    assert err.getvalue().count("ONE try is left") == 2
    assert "Enter the PIN again" in err.getvalue()


def test_a_locked_token_says_so_and_is_not_tried_again():
    key = RefusingKey(hsm.PinState(locked=True))
    with pytest.raises(LoginFailed, match="bị khoá"):
        log_in(key, TypedPin(), lang="vi", err=io.StringIO())  # type: ignore[arg-type]
    assert key.logins == 1
    locked = RefusingKey(hsm.PinState(), locked_on_login=True)
    with pytest.raises(LoginFailed, match="security officer"):
        log_in(locked, TypedPin(), lang="en", err=io.StringIO())  # type: ignore[arg-type]
    assert locked.logins == 1


def test_a_pin_from_a_file_is_not_retried(tmp_path):
    path = tmp_path / "pin"
    path.write_text("000000")
    path.chmod(0o600)
    key = RefusingKey(hsm.PinState(count_low=True))
    err = io.StringIO()
    with pytest.raises(LoginFailed):
        log_in(key, hsm.PinSource.from_file(path), lang="en", err=err)
    assert key.logins == 1
    assert "few PIN tries are left" in err.getvalue()
