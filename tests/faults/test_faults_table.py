"""The check every row of the fault table goes through must see a loss, a
stray and duplicates beyond the bound."""

import pytest

import faults


def test_report_can_fail(monkeypatch):
    monkeypatch.setattr(faults, "ROWS", [])
    with pytest.raises(AssertionError, match="1 accepted but never stored"):
        faults.report("drop", "3", [1, 2, 3], [1, 2])
    with pytest.raises(AssertionError, match="stored but never accepted"):
        faults.report("stray", "2", [1, 2], [1, 2, 9])
    with pytest.raises(AssertionError, match="2 duplicates, more than the bound 1"):
        faults.report("dup", "2", [1, 2], [1, 1, 2, 2], bound=1)
    assert faults.report("ok", "2", [1, 2], [1, 2, 2], bound=1) == (0, 1)
    assert [(r["lost"], r["duplicated"]) for r in faults.ROWS] == [(1, 0), (0, 0), (0, 2), (0, 1)]
