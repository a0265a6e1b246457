"""The hash chain itself, without a database."""

from __future__ import annotations

from ildtrial.core.audit_chain import GENESIS_HASH, entry_hash, verify_chain


def make_chain(n: int) -> list[dict]:
    entries, previous = [], GENESIS_HASH
    for i in range(1, n + 1):
        e = {"sequence": i, "occurred_at": f"2026-01-01T00:00:0{i % 10}+00:00", "actor_username": "u",
             "action": "update", "model": "m", "object_pk": str(i), "changes": {"x": [i - 1, i]}, "reason": "r"}
        e["previous_hash"] = previous
        e["entry_hash"] = previous = entry_hash(e, previous)
        entries.append(e)
    return entries


def test_intact_chain_verifies():
    chain = make_chain(5)
    report = verify_chain(chain, head=(5, chain[-1]["entry_hash"]))
    assert report.ok and report.checked == 5


def test_changed_value_is_detected_at_that_entry():
    chain = make_chain(5)
    chain[2]["changes"] = {"x": [2, 99]}
    report = verify_chain(chain)
    assert not report.ok and report.first_break.sequence == 3
    assert "changed" in report.first_break.problem


def test_rehashed_entry_breaks_the_link_to_the_next():
    chain = make_chain(5)
    chain[2]["reason"] = "forged"
    chain[2]["entry_hash"] = entry_hash(chain[2], chain[2]["previous_hash"])
    report = verify_chain(chain)
    assert report.first_break.sequence == 4


def test_removed_entry_is_detected():
    chain = make_chain(5)
    del chain[1]
    assert verify_chain(chain).first_break.sequence == 3


def test_truncated_tail_is_detected_against_the_head():
    chain = make_chain(5)
    head = (5, chain[-1]["entry_hash"])
    report = verify_chain(chain[:3], head=head)
    assert not report.ok and "removed" in report.first_break.problem


def test_key_order_does_not_matter():
    e = {"sequence": 1, "changes": {"b": 1, "a": 2}}
    f = {"changes": {"a": 2, "b": 1}, "sequence": 1}
    assert entry_hash(e, GENESIS_HASH) == entry_hash(f, GENESIS_HASH)
