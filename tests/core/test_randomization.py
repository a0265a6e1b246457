"""The allocation list: 1:1, permuted blocks of 2 or 4, stratified by diagnosis group
(protocol-notes.md, "Arms"), reproducible from its recorded seed."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ildtrial.core import randomization as rnd
from ildtrial.core.protocol import Randomization, load_protocol
from ildtrial.core.randomization import (
    AllocationList,
    balance_report,
    generate_list,
    imbalance,
    next_slot,
)

SEED = 20151102
DESIGN = load_protocol().protocol.randomization


@pytest.fixture(scope="module")
def design() -> Randomization:
    return DESIGN


@pytest.fixture(scope="module")
def allocation(design: Randomization) -> AllocationList:
    return generate_list(design, SEED)


def blocks_of(allocation: AllocationList, stratum: str) -> list[list[rnd.Slot]]:
    slots = allocation.stratum_slots(stratum)
    return [list(g) for _, g in itertools.groupby(slots, key=lambda s: s.block)]


def prefix_imbalances(arms: list[str]) -> list[int]:
    counts: Counter[str] = Counter()
    out = []
    for arm in arms:
        counts[arm] += 1
        out.append(abs(counts["MSC"] - counts["PBO"]))
    return out


# --------------------------------------------------------------------------- reproducibility
def test_same_seed_gives_the_identical_list_and_digest(design: Randomization) -> None:
    a, b = generate_list(design, SEED), generate_list(design, SEED)
    assert a == b
    assert a.digest == b.digest and len(a.digest) == 64
    assert a.verify()


def test_different_seed_gives_a_different_list(design: Randomization) -> None:
    a, b = generate_list(design, 1), generate_list(design, 2)
    assert [s.arm for s in a.slots] != [s.arm for s in b.slots]
    assert a.digest != b.digest


def test_the_algorithm_is_frozen_this_seed_always_gives_this_list(design: Randomization) -> None:
    """A regression pin: if this fails, stored lists can no longer be regenerated."""
    a = generate_list(design, SEED)
    assert a.algorithm == "sha256-ctr-v1"
    assert a.digest == "e69eb903d67ac30d1a782d48940b31c051a927cfe0e4ea3ff4d62e2237da1716"
    assert "".join(s.arm[0] for s in a.stratum_slots("IIP")) == (
        "PPMMMPMPPMMPMPMPMPMPPMPPMMMPPMMPMPPMMPMP"
    )


def test_the_module_docstring_is_enough_to_regenerate_the_list(
    design: Randomization, allocation: AllocationList
) -> None:
    """An independent implementation written from the docstring alone gives the same arms."""

    def words(key: str) -> Iterator[int]:
        for counter in itertools.count():
            h = hashlib.sha256(
                b"ildtrial.randomization.v1\x00"
                + str(SEED).encode()
                + b"\x00"
                + key.encode()
                + b"\x00"
                + str(counter).encode()
            ).digest()
            for i in range(4):
                yield int.from_bytes(h[8 * i : 8 * i + 8], "big")

    for key in ("IIP", "CTD_ILD"):
        stream = words(key)

        def uniform(n: int, stream: Iterator[int] = stream) -> int:
            if n == 1:
                return 0
            while (w := next(stream)) >= 2**64 - 2**64 % n:
                pass
            return w % n

        arms: list[str] = []
        while len(arms) < design.slots_per_stratum:
            fitting = [
                s for s in sorted(design.block_sizes) if s <= design.slots_per_stratum - len(arms)
            ]
            size = fitting[uniform(len(fitting))]
            block = ["MSC"] * (size // 2) + ["PBO"] * (size // 2)
            for i in range(size - 1, 0, -1):
                j = uniform(i + 1)
                block[i], block[j] = block[j], block[i]
            arms += block
        assert arms == [s.arm for s in allocation.stratum_slots(key)]


def test_cryptographic_seed_is_drawn_and_recorded_when_none_is_given(
    design: Randomization, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def fake_randbits(k: int) -> int:
        calls.append(k)
        return 123456789

    monkeypatch.setattr(rnd.secrets, "randbits", fake_randbits)
    a = generate_list(design)
    assert calls == [63]  # fits a signed 64-bit database column
    assert (a.seed, a.seed_source) == (123456789, "secrets")
    b = generate_list(design, a.seed)
    assert b.slots == a.slots and b.digest == a.digest  # the recorded seed regenerates it


def test_unpatched_cryptographic_seeds_differ_and_are_63_bits(design: Randomization) -> None:
    a, b = generate_list(design), generate_list(design)
    assert a.seed != b.seed
    assert 0 <= a.seed < 2**63 and a.seed_source == "secrets"


def test_a_tampered_list_fails_verification(allocation: AllocationList) -> None:
    first = allocation.slots[0]
    flipped = dataclasses.replace(first, arm="MSC" if first.arm == "PBO" else "PBO")
    forged = dataclasses.replace(allocation, slots=(flipped, *allocation.slots[1:]))
    assert not forged.verify()
    rehashed = dataclasses.replace(forged, digest=rnd._digest(forged))
    assert not rehashed.verify()  # consistent digest, but not what the seed gives


# --------------------------------------------------------------------------- design
def test_every_stratum_has_slots_per_stratum_slots_numbered_1_to_n(
    design: Randomization, allocation: AllocationList
) -> None:
    assert allocation.strata == ("IIP", "CTD_ILD")
    for key in allocation.strata:
        slots = allocation.stratum_slots(key)
        assert len(slots) == design.slots_per_stratum == 40
        assert [s.sequence for s in slots] == list(range(1, 41))
        assert all(s.stratum_levels == (("diagnosis_group", key),) for s in slots)
    assert len(allocation.slots) == 80


def test_block_sizes_are_only_2_or_4_and_blocks_are_numbered_in_order(
    allocation: AllocationList,
) -> None:
    for key in allocation.strata:
        blocks = blocks_of(allocation, key)
        assert [b[0].block for b in blocks] == list(range(1, len(blocks) + 1))
        for b in blocks:
            assert b[0].block_size in {2, 4}
            assert len(b) == b[0].block_size
            assert {s.block_size for s in b} == {b[0].block_size}


def test_ratio_is_1_to_1_within_every_complete_block(allocation: AllocationList) -> None:
    for key in allocation.strata:
        for b in blocks_of(allocation, key):
            if len(b) == b[0].block_size:
                counts = Counter(s.arm for s in b)
                assert counts["MSC"] == counts["PBO"] == len(b) // 2


def test_randomization_numbers_are_unique_and_name_the_stratum(allocation: AllocationList) -> None:
    numbers = [s.number for s in allocation.slots]
    assert len(set(numbers)) == len(numbers)
    assert numbers[0] == "IIP-001" and numbers[-1] == "CTD_ILD-040"
    assert all(s.number == f"{s.stratum}-{s.sequence:03d}" for s in allocation.slots)


def test_stratum_key_comes_from_the_participants_factor_levels(allocation: AllocationList) -> None:
    assert allocation.stratum_key({"diagnosis_group": "CTD_ILD"}) == "CTD_ILD"
    with pytest.raises(KeyError):
        allocation.stratum_key({"diagnosis_group": "SARCOIDOSIS"})
    with pytest.raises(KeyError):
        allocation.stratum_key({})


def test_two_factors_give_the_cartesian_product_of_strata(design: Randomization) -> None:
    sex = design.strata[0].model_copy(update={"factor": "sex", "levels": ["M", "F"]})
    two = design.model_copy(update={"strata": [design.strata[0], sex], "slots_per_stratum": 6})
    a = generate_list(two, 7)
    assert a.strata == ("IIP/M", "IIP/F", "CTD_ILD/M", "CTD_ILD/F")
    assert len(a.slots) == 24 and a.slots[0].number == "IIP/M-001"
    assert a.verify()


def test_no_strata_gives_one_stratum(design: Randomization) -> None:
    a = generate_list(design.model_copy(update={"strata": []}), 7)
    assert a.strata == ("ALL",) and len(a.slots) == 40


def test_a_stratum_size_that_no_block_fills_ends_in_an_incomplete_block(
    design: Randomization,
) -> None:
    odd = design.model_copy(update={"slots_per_stratum": 7})
    a = generate_list(odd, 3)
    for key in a.strata:
        blocks = blocks_of(a, key)
        assert sum(len(b) for b in blocks) == 7
        assert all(len(b) == b[0].block_size for b in blocks[:-1])
        assert len(blocks[-1]) == 1 and blocks[-1][0].block_size == 2
    assert balance_report(a)["max_imbalance"] <= 2


def test_unequal_ratio_is_kept_in_every_block(design: Randomization) -> None:
    two_to_one = design.model_copy(
        update={"ratio": {"MSC": 2, "PBO": 1}, "block_sizes": [3, 6], "slots_per_stratum": 30}
    )
    a = generate_list(two_to_one, 11)
    for key in a.strata:
        for b in blocks_of(a, key):
            counts = Counter(s.arm for s in b)
            assert counts["MSC"] == 2 * counts["PBO"]
    assert balance_report(a)["strata"]["IIP"]["counts"] == {"MSC": 20, "PBO": 10}


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"block_sizes": [3]}, "block size 3 is not a multiple of the ratio total 2"),
        ({"block_sizes": [2, 5]}, "block size 5 is not a multiple of the ratio total 2"),
        ({"ratio": {"MSC": 2, "PBO": 1}}, "block size 2 is not a multiple of the ratio total 3"),
        ({"ratio": {"MSC": 0, "PBO": 1}}, "ratio weight of MSC must be a whole number >= 1"),
        ({"ratio": {"MSC": 1.5, "PBO": 1}}, "ratio weight of MSC must be a whole number >= 1"),
        ({"ratio": {"MSC": 1}}, "the ratio needs at least two arms"),
        ({"block_sizes": []}, "at least one block size is needed"),
        ({"block_sizes": [0]}, "block size 0 must be a whole number >= 1"),
        ({"block_sizes": [2, 2]}, "block size 2 is listed twice"),
        ({"slots_per_stratum": 0}, "slots_per_stratum must be a whole number >= 1"),
    ],
)
def test_invalid_design_is_refused_with_a_clear_message(
    design: Randomization, update: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match="invalid randomization design") as exc:
        generate_list(design.model_copy(update=update), 1)
    assert message in str(exc.value)


def test_every_problem_is_reported_at_once(design: Randomization) -> None:
    bad = design.model_copy(update={"ratio": {"MSC": 0, "PBO": 1}, "block_sizes": [3, 3]})
    with pytest.raises(ValueError) as exc:
        generate_list(bad, 1)
    text = str(exc.value)
    assert "ratio weight of MSC" in text and "listed twice" in text


def test_stratum_levels_that_cannot_name_a_stratum_are_refused(design: Randomization) -> None:
    slash = design.strata[0].model_copy(update={"levels": ["IIP", "CTD/ILD"]})
    with pytest.raises(ValueError, match="cannot name a stratum"):
        generate_list(design.model_copy(update={"strata": [slash]}), 1)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "42"])
def test_invalid_seed_is_refused(design: Randomization, seed: object) -> None:
    with pytest.raises(ValueError, match="seed must be a whole number"):
        generate_list(design, seed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- balance
def test_balance_report_counts_arms_overall_and_at_the_end_of_each_block(
    allocation: AllocationList,
) -> None:
    report = balance_report(allocation)
    assert report["ratio"] == {"MSC": 1, "PBO": 1}
    for key in allocation.strata:
        entry = report["strata"][key]
        slots = allocation.stratum_slots(key)
        assert entry["slots"] == 40
        assert entry["counts"] == {"MSC": 20, "PBO": 20} and entry["imbalance"] == 0
        blocks = blocks_of(allocation, key)
        assert [b["block"] for b in entry["blocks"]] == [b[0].block for b in blocks]
        for row, block in zip(entry["blocks"], blocks, strict=True):
            upto = slots[: block[-1].sequence]
            assert row["end_sequence"] == block[-1].sequence
            assert row["counts"] == {arm: sum(s.arm == arm for s in upto) for arm in ("MSC", "PBO")}
            assert row["imbalance"] == 0 and row["complete"] is True
        assert entry["max_imbalance"] == max(prefix_imbalances([s.arm for s in slots]))
        assert "used" not in entry
    assert report["max_imbalance"] == max(e["max_imbalance"] for e in report["strata"].values())


def test_balance_report_gives_the_imbalance_among_allocated_slots(
    allocation: AllocationList,
) -> None:
    iip = [s.arm for s in allocation.stratum_slots("IIP")]
    report = balance_report(allocation, {"IIP": 5, "CTD_ILD": 0})
    used = report["strata"]["IIP"]["used"]
    assert used["n"] == 5
    assert used["counts"] == {"MSC": iip[:5].count("MSC"), "PBO": iip[:5].count("PBO")}
    assert used["imbalance"] == abs(iip[:5].count("MSC") - iip[:5].count("PBO"))
    assert report["strata"]["CTD_ILD"]["used"] == {
        "n": 0,
        "counts": {"MSC": 0, "PBO": 0},
        "imbalance": 0,
    }


def test_balance_report_refuses_impossible_used_counts(allocation: AllocationList) -> None:
    with pytest.raises(ValueError, match="outside 0..40"):
        balance_report(allocation, {"IIP": 41})
    with pytest.raises(KeyError, match="unknown strata"):
        balance_report(allocation, {"SARC": 1})


def test_imbalance_is_weighted_for_unequal_ratios() -> None:
    assert imbalance({"MSC": 3, "PBO": 1}, {"MSC": 1, "PBO": 1}) == 2
    assert imbalance({"MSC": 2, "PBO": 1}, {"MSC": 2, "PBO": 1}) == 0
    assert imbalance({"MSC": 1, "PBO": 0}, {"MSC": 2, "PBO": 1}) == 0.5


def test_next_slot_takes_the_lowest_unused_sequence(allocation: AllocationList) -> None:
    iip = allocation.stratum_slots("IIP")
    assert next_slot(iip, []) == iip[0]
    assert next_slot(iip, ["IIP-001", "IIP-003"]) == iip[1]
    assert next_slot(iip, [s.number for s in iip]) is None
    with pytest.raises(ValueError, match="one stratum"):
        next_slot(allocation.slots, [])


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63 - 1))
def test_imbalance_within_a_stratum_never_exceeds_half_the_largest_block(seed: int) -> None:
    a = generate_list(DESIGN, seed)
    bound = max(DESIGN.block_sizes) // 2
    for key in a.strata:
        arms = [s.arm for s in a.stratum_slots(key)]
        assert max(prefix_imbalances(arms)) <= bound
        assert Counter(arms) == {"MSC": 20, "PBO": 20}
    assert balance_report(a)["max_imbalance"] <= bound
