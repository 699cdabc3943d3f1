"""issuer.audit: the JSON lines every key-ring change (and the other helpers) write."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from issuer.audit import FORBIDDEN_FIELDS, audit


def test_one_json_line_with_timestamp_event_and_fields(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        audit("keys.rotate", retired="a", active="b", kids=["a", "b"], forced=False)
    (record,) = caplog.records
    assert "\n" not in record.message
    line = json.loads(record.message)
    assert list(line)[:2] == ["ts", "event"]
    assert line["ts"].endswith("Z") and line["event"] == "keys.rotate"
    assert line | {"ts": None} == {
        "ts": None,
        "event": "keys.rotate",
        "retired": "a",
        "active": "b",
        "kids": ["a", "b"],
        "forced": False,
    }


@pytest.mark.parametrize("name", sorted(FORBIDDEN_FIELDS))
def test_fields_that_carry_secrets_are_refused(caplog, name: str) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"), pytest.raises(ValueError):
        audit("login", **{name: "s3cret"})
    assert "s3cret" not in caplog.text


def test_timestamp_cannot_be_forged() -> None:
    with pytest.raises(ValueError, match="ts"):
        audit("keys.init", ts="1970-01-01T00:00:00Z")


def test_values_that_are_not_json_are_stringified(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        audit("keys.init", directory=Path("/srv/keys"))
    assert json.loads(caplog.records[0].message)["directory"] == "/srv/keys"
