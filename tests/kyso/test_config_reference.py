"""The configuration reference in docs/operations.md is generated from the schema and current:
every key of kyso.config has a description, and the block in the document is what the
generator writes today (`python -m kyso.config_reference --write docs/operations.md`)."""

from __future__ import annotations

from pathlib import Path

from kyso.config import Config
from kyso.config_reference import BEGIN, DESCRIPTIONS, END, _rows, reference, undescribed

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


def test_every_key_has_a_description_and_no_description_is_stale():
    assert undescribed() == []
    keys = {key for _, key, _, _ in _rows(Config, "")}
    assert set(DESCRIPTIONS) - keys == set()


def test_the_reference_in_the_operations_guide_is_current():
    document = OPERATIONS.read_text(encoding="utf-8")
    block = document[document.index(BEGIN) : document.index(END) + len(END)]
    assert block == reference(), (
        "docs/operations.md is stale: run python -m kyso.config_reference --write"
        " docs/operations.md"
    )


def test_allowed_values_are_listed():
    text = reference()
    assert "| `log_level` | `DEBUG` / `INFO` / `WARNING` / `ERROR` | `INFO` |" in text
    assert "`GOVERNANCE` / `COMPLIANCE`" in text
    assert "### `[keys.ALIAS]`" in text
    assert "| `certificate` | path | — |" in text
