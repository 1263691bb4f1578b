"""The routing property test of issue 6, at a size the suite can afford:
two linbatd processes on one database, random inbound WhatsApp messages,
resolves and presence changes, and the invariants of
tests/lib/routing_property.py checked on the whole history. The full size
(10,000 messages, 2,000 investors, 20 operators of capacity 5) is
bench/routing-property."""

import os
import sys

import routing_property

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_whatsapp import DISPATCH, SECRET, WaEmu, wa_section  # noqa: E402


def test_routing_invariants_hold_across_two_processes(start_linbatd, tmp_path, db):
    emu = WaEmu(str(tmp_path))
    try:
        extra = {"channel wa1": wa_section(emu.url), "dispatch": DISPATCH}
        daemons = [start_linbatd(extra=extra), start_linbatd(extra=extra)]
        bad, counts = routing_property.run(db, daemons, SECRET, n_messages=240, n_investors=40,
                                           n_operators=4, capacity=2,
                                           seed=int(os.environ.get("LINBAT_PROPERTY_SEED", "0")) or None)
        assert not bad, "\n".join(bad[:20])
        assert counts["messages stored"] == 240 and counts["left open"] == 0
        assert counts["queue assignments"] > 0 and counts["acknowledgements"] > 0
    finally:
        emu.stop()
