"""Logging in to the official's token: a refused PIN says what the token tells of the tries
left (its flags: count low, final try, locked) and, when the PIN was typed, is asked again
once — never more (tokens lock after a few wrong PINs). A PIN from a file or the environment is
not retried: the same wrong PIN would only use up another try."""

from __future__ import annotations

from typing import Protocol, TextIO

import hsm
from kyso.cli.text import Language, say

__all__ = ["LoginFailed", "PinKey", "log_in", "pin_source"]


class PinKey(Protocol):
    def login(self, pin: str) -> None: ...


class LoginFailed(Exception):
    """The token was not logged in; the message is for the person (already translated)."""


def pin_source(pin_file: str | None, env_name: str, lang: Language) -> hsm.PinSource:
    import os

    if pin_file:
        return hsm.PinSource.from_file(pin_file)
    if os.environ.get(env_name):
        return hsm.PinSource.from_env(env_name)
    return hsm.PinSource.prompt(say("agent.pin_prompt", lang))


def _tries_text(key: object, lang: Language) -> tuple[str, bool]:
    """What the token says of the tries left; and whether it is locked."""
    reader = getattr(key, "pin_state", None)
    if reader is None:
        return say("agent.pin_unknown_tries", lang), False
    try:
        state: hsm.PinState = reader()
    except hsm.HsmError:
        return say("agent.pin_unknown_tries", lang), False
    if state.locked:
        return say("agent.pin_locked", lang), True
    if state.final_try:
        return say("agent.pin_final", lang), False
    if state.count_low:
        return say("agent.pin_low", lang), False
    return say("agent.pin_unknown_tries", lang), False


def log_in(key: PinKey, pin: hsm.PinSource, *, lang: Language, err: TextIO) -> None:
    """Log in; LoginFailed (with the person's message) when the token refuses."""
    attempts = 2 if pin.kind == "prompt" else 1
    for attempt in range(attempts):
        try:
            key.login(pin.read())
            return
        except hsm.PinLocked:
            raise LoginFailed(say("agent.pin_locked", lang)) from None
        except hsm.PinIncorrect:
            tries, locked = _tries_text(key, lang)
            if locked:
                raise LoginFailed(tries) from None
            print(f"{say('agent.pin_wrong', lang)} {tries}", file=err, flush=True)
            if attempt + 1 < attempts:
                print(say("agent.pin_again", lang), file=err, flush=True)
        except hsm.HsmError as exc:
            raise LoginFailed(say("agent.login_failed", lang, error=exc)) from None
    raise LoginFailed(say("agent.pin_refused", lang))
