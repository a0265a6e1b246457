"""The allocation list: stratified permuted blocks of random size, reproducible forever.

The list is generated once, before the first participant, from the protocol's
``randomization`` section and one integer seed. It is stored with its seed and its digest;
anyone holding the seed (the unblinded statistician, an auditor) can regenerate it years
later and check the stored list against the digest. That is why the random numbers do
not come from :mod:`random`: its ``shuffle``/``choice``/``randrange`` have changed between
CPython versions, and a list that cannot be regenerated cannot be audited.

Algorithm ``sha256-ctr-v1`` (frozen; a change needs a new name):

1. Strata are the cartesian product of the strata factors' levels, in protocol order. The
   stratum key joins the levels with ``/`` (here ``IIP`` and ``CTD_ILD``; a trial with no
   strata has one stratum ``ALL``).
2. Each stratum has its own stream of random 64-bit words. Word ``i`` of the stream is
   bytes ``8*(i % 4)`` to ``8*(i % 4) + 8`` (big-endian) of
   ``SHA-256("ildtrial.randomization.v1" NUL seed NUL stratum_key NUL str(i // 4))``,
   with the seed written in decimal and the key in UTF-8. Separate streams mean one
   stratum's list depends only on the seed, its key and the design.
3. A uniform integer in ``[0, n)`` takes the next word ``w`` and returns ``w % n``, unless
   ``w >= 2**64 - 2**64 % n``, in which case the word is rejected and the next one taken
   (no modulo bias). ``n == 1`` returns 0 and takes no word.
4. Blocks are built until the stratum holds ``slots_per_stratum`` slots. A block's size is
   drawn uniformly among the distinct ``block_sizes`` that still fit in the remaining
   slots (so every block is complete when the sizes allow); if none fits, the smallest
   size is used and the block is cut short (an incomplete last block).
5. A block of size ``b`` holds each arm ``b * weight / sum(weights)`` times, arms in
   alphabetical order of code, then shuffled by Fisher–Yates: for ``i`` from ``b - 1``
   down to 1, swap positions ``i`` and ``uniform(i + 1)``.

Randomization numbers are ``<stratum key>-<sequence>``, the sequence zero-padded to at
least three digits (``IIP-001``, ``CTD_ILD-040``): unique across the list, readable on
the phone, and the pharmacist can see the stratum from the number alone. They reveal
nothing about the arm.

When no seed is given one is drawn from :mod:`secrets` (63 bits, so it fits a signed
64-bit database column) and recorded in the list with ``seed_source = "secrets"``.

Imbalance, as reported here, is ``max(n_arm / weight) - min(n_arm / weight)`` over the
arms; for a 1:1 ratio that is the familiar ``|n_MSC - n_PBO|``. With permuted blocks it
never exceeds ``max(block_sizes) / sum(weights)`` (2 for blocks of 2 and 4 at 1:1) and is
0 at the end of every complete block.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal, Protocol

ALGORITHM = "sha256-ctr-v1"
_DOMAIN = b"ildtrial.randomization.v1"
_WORD = 2**64
NO_STRATA_KEY = "ALL"
STRATUM_JOINER = "/"


class StratumConfig(Protocol):
    """What the generator needs of a stratum (``ildtrial.core.protocol.Stratum`` has it)."""

    @property
    def factor(self) -> str: ...

    @property
    def levels(self) -> Sequence[str]: ...


class RandomizationConfig(Protocol):
    """What the generator needs of the design (``ildtrial.core.protocol.Randomization``)."""

    @property
    def ratio(self) -> Mapping[str, int]: ...

    @property
    def block_sizes(self) -> Sequence[int]: ...

    @property
    def strata(self) -> Sequence[StratumConfig]: ...

    @property
    def slots_per_stratum(self) -> int: ...


@dataclass(frozen=True)
class Slot:
    """One line of the allocation list.

    ``sequence`` runs 1..n within the stratum and is the order of use; ``block`` and
    ``block_size`` say which permuted block the slot belongs to (``block_size`` is the
    drawn size, even for a cut-short last block).
    """

    stratum: str
    stratum_levels: tuple[tuple[str, str], ...]
    sequence: int
    block: int
    block_size: int
    arm: str
    number: str


@dataclass(frozen=True)
class AllocationList:
    """The whole list with everything needed to regenerate and verify it."""

    algorithm: str
    seed: int
    seed_source: Literal["given", "secrets"]
    ratio: tuple[tuple[str, int], ...]
    block_sizes: tuple[int, ...]
    stratification: tuple[tuple[str, tuple[str, ...]], ...]
    strata: tuple[str, ...]
    slots_per_stratum: int
    slots: tuple[Slot, ...]
    digest: str = field(default="")

    @property
    def factors(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.stratification)

    def stratum_slots(self, stratum: str) -> tuple[Slot, ...]:
        """The slots of one stratum in sequence order; KeyError for an unknown stratum."""
        if stratum not in self.strata:
            raise KeyError(f"no stratum {stratum!r}; strata are {list(self.strata)}")
        return tuple(s for s in self.slots if s.stratum == stratum)

    def stratum_key(self, levels: Mapping[str, str]) -> str:
        """The key of the stratum a participant belongs to, from factor → level."""
        missing = [f for f in self.factors if f not in levels]
        if missing:
            raise KeyError(f"no level given for stratification factor(s) {missing}")
        key = stratum_key([levels[f] for f in self.factors])
        if key not in self.strata:
            raise KeyError(f"no stratum {key!r}; strata are {list(self.strata)}")
        return key

    def canonical(self) -> str:
        """The content the digest covers, as compact JSON with sorted keys."""
        return _canonical(self)

    def verify(self) -> bool:
        """True when the digest matches the content *and* regenerating from the seed gives
        the same list: a stored list is then exactly the one the seed defines."""
        if self.digest != _digest(self):
            return False
        again = _generate(
            dict(self.ratio),
            self.block_sizes,
            self.stratification,
            self.slots_per_stratum,
            self.seed,
            self.seed_source,
        )
        return again.digest == self.digest


def stratum_key(levels: Sequence[str]) -> str:
    """The key of a stratum from its levels in factor order (``ALL`` when unstratified)."""
    return STRATUM_JOINER.join(levels) if levels else NO_STRATA_KEY


# --------------------------------------------------------------------------- random draws
class _Stream:
    """The per-stratum stream of 64-bit words described in the module docstring."""

    def __init__(self, seed: int, key: str) -> None:
        self._prefix = (
            _DOMAIN + b"\x00" + str(seed).encode() + b"\x00" + key.encode("utf-8") + b"\x00"
        )
        self._words = self._generate()

    def _generate(self) -> Iterator[int]:
        for counter in itertools.count():
            digest = hashlib.sha256(self._prefix + str(counter).encode()).digest()
            for i in range(4):
                yield int.from_bytes(digest[8 * i : 8 * i + 8], "big")

    def uniform(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection sampling (no modulo bias)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        if n == 1:
            return 0
        limit = _WORD - _WORD % n
        while True:
            w = next(self._words)
            if w < limit:
                return w % n


# --------------------------------------------------------------------------- validation
def _validate(
    ratio: Mapping[str, int],
    block_sizes: Sequence[int],
    strata: Sequence[tuple[str, Sequence[str]]],
    slots_per_stratum: int,
) -> None:
    """Refuse a design that cannot give the ratio in every block, with every problem named."""
    problems: list[str] = []
    if len(ratio) < 2:
        problems.append(f"the ratio needs at least two arms, got {sorted(ratio)}")
    for arm, weight in ratio.items():
        if not arm or STRATUM_JOINER in arm:
            problems.append(f"arm code {arm!r} is not usable")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            problems.append(f"ratio weight of {arm} must be a whole number >= 1, got {weight!r}")
    total = sum(
        w for w in ratio.values() if isinstance(w, int) and not isinstance(w, bool) and w >= 1
    )
    ratio_text = ":".join(ratio) + " = " + ":".join(str(w) for w in ratio.values())
    if not block_sizes:
        problems.append("at least one block size is needed")
    seen: set[int] = set()
    for size in block_sizes:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            problems.append(f"block size {size!r} must be a whole number >= 1")
            continue
        if size in seen:
            problems.append(f"block size {size} is listed twice")
        seen.add(size)
        if total and size % total:
            problems.append(
                f"block size {size} is not a multiple of the ratio total {total} ({ratio_text}): "
                "a block could not hold the arms in the ratio"
            )
    if (
        not isinstance(slots_per_stratum, int)
        or isinstance(slots_per_stratum, bool)
        or slots_per_stratum < 1
    ):
        problems.append(f"slots_per_stratum must be a whole number >= 1, got {slots_per_stratum!r}")
    factors = [f for f, _ in strata]
    for f in sorted({f for f in factors if factors.count(f) > 1}):
        problems.append(f"stratification factor {f!r} is listed twice")
    for factor, levels in strata:
        if not levels:
            problems.append(f"stratification factor {factor!r} has no levels")
        for level in sorted({lv for lv in levels if list(levels).count(lv) > 1}):
            problems.append(f"level {level!r} of factor {factor!r} is listed twice")
        for level in levels:
            if not level or STRATUM_JOINER in level or level == NO_STRATA_KEY:
                problems.append(
                    f"level {level!r} of factor {factor!r} cannot name a stratum "
                    f"(empty, contains {STRATUM_JOINER!r}, or is {NO_STRATA_KEY!r})"
                )
    if problems:
        raise ValueError(
            "invalid randomization design:\n" + "\n".join(f"  - {p}" for p in problems)
        )


# --------------------------------------------------------------------------- generation
def generate_list(
    protocol_randomization: RandomizationConfig, seed: int | None = None
) -> AllocationList:
    """Generate the allocation list of the design for ``seed`` (drawn from :mod:`secrets`
    and recorded when None). Same design and seed give the same list on any Python."""
    source: Literal["given", "secrets"]
    if seed is None:
        seed, source = secrets.randbits(63), "secrets"
    else:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"the seed must be a whole number >= 0, got {seed!r}")
        source = "given"
    strata = [(s.factor, list(s.levels)) for s in protocol_randomization.strata]
    return _generate(
        dict(protocol_randomization.ratio),
        tuple(protocol_randomization.block_sizes),
        strata,
        protocol_randomization.slots_per_stratum,
        seed,
        source,
    )


def _generate(
    ratio: dict[str, int],
    block_sizes: Sequence[int],
    strata: Sequence[tuple[str, Sequence[str]]],
    slots_per_stratum: int,
    seed: int,
    seed_source: Literal["given", "secrets"],
) -> AllocationList:
    _validate(ratio, block_sizes, strata, slots_per_stratum)
    total = sum(ratio.values())
    arms = sorted(ratio)
    sizes = sorted(set(block_sizes))
    width = max(3, len(str(slots_per_stratum)))
    factors = tuple(f for f, _ in strata)
    combos = list(itertools.product(*(levels for _, levels in strata)))
    keys = tuple(stratum_key(c) for c in combos)

    slots: list[Slot] = []
    for combo, key in zip(combos, keys, strict=True):
        stream = _Stream(seed, key)
        stratum_levels = tuple(zip(factors, combo, strict=True))
        sequence = 0
        block = 0
        while sequence < slots_per_stratum:
            remaining = slots_per_stratum - sequence
            fitting = [s for s in sizes if s <= remaining]
            size = fitting[stream.uniform(len(fitting))] if fitting else sizes[0]
            block += 1
            content = [arm for arm in arms for _ in range(size * ratio[arm] // total)]
            for i in range(len(content) - 1, 0, -1):
                j = stream.uniform(i + 1)
                content[i], content[j] = content[j], content[i]
            for arm in content[:remaining]:
                sequence += 1
                slots.append(
                    Slot(
                        stratum=key,
                        stratum_levels=stratum_levels,
                        sequence=sequence,
                        block=block,
                        block_size=size,
                        arm=arm,
                        number=f"{key}-{sequence:0{width}d}",
                    )
                )
    allocation = AllocationList(
        algorithm=ALGORITHM,
        seed=seed,
        seed_source=seed_source,
        ratio=tuple((arm, ratio[arm]) for arm in arms),
        block_sizes=tuple(sizes),
        stratification=tuple((f, tuple(levels)) for f, levels in strata),
        strata=keys,
        slots_per_stratum=slots_per_stratum,
        slots=tuple(slots),
    )
    return replace(allocation, digest=_digest(allocation))


def _canonical(a: AllocationList) -> str:
    """Everything that defines the list except how the seed was obtained."""
    content = {
        "algorithm": a.algorithm,
        "seed": str(a.seed),
        "ratio": [list(r) for r in a.ratio],
        "block_sizes": list(a.block_sizes),
        "stratification": [[f, list(levels)] for f, levels in a.stratification],
        "strata": list(a.strata),
        "slots_per_stratum": a.slots_per_stratum,
        "slots": [
            [
                s.stratum,
                [list(p) for p in s.stratum_levels],
                s.sequence,
                s.block,
                s.block_size,
                s.arm,
                s.number,
            ]
            for s in a.slots
        ],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(a: AllocationList) -> str:
    return hashlib.sha256(_canonical(a).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- use and balance
def next_slot(slots: Iterable[Slot], used: Iterable[str]) -> Slot | None:
    """The lowest-sequence slot of one stratum whose number is not in ``used``; None when the
    stratum is exhausted. The database layer does the same under a lock; this is the rule."""
    taken = set(used)
    candidates = sorted(slots, key=lambda s: s.sequence)
    if len({s.stratum for s in candidates}) > 1:
        raise ValueError("next_slot takes the slots of one stratum")
    return next((s for s in candidates if s.number not in taken), None)


def _number(value: Fraction) -> int | float:
    return value.numerator if value.denominator == 1 else float(value)


def imbalance(counts: Mapping[str, int], ratio: Mapping[str, int]) -> int | float:
    """``max(n/weight) - min(n/weight)`` over the arms; ``|n_A - n_B|`` for 1:1."""
    scaled = [Fraction(counts.get(arm, 0), weight) for arm, weight in ratio.items()]
    return _number(max(scaled) - min(scaled))


def balance_report(
    allocation_list: AllocationList, used_counts: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Per stratum: arm counts overall and (cumulative) at the end of each block, the largest
    imbalance over every prefix of the sequence, and, when ``used_counts`` gives how many
    slots of a stratum have been allocated (in sequence order), the imbalance among those.

    The DSMB and the statistician read this to confirm the list behaves as designed without
    seeing which participant got which arm."""
    ratio = dict(allocation_list.ratio)
    used_counts = dict(used_counts or {})
    unknown = sorted(set(used_counts) - set(allocation_list.strata))
    if unknown:
        raise KeyError(f"used_counts names unknown strata {unknown}")
    report: dict[str, Any] = {"ratio": ratio, "strata": {}}
    overall_max: int | float = 0
    for key in allocation_list.strata:
        slots = allocation_list.stratum_slots(key)
        counts = dict.fromkeys(ratio, 0)
        blocks: list[dict[str, Any]] = []
        worst: int | float = 0
        for i, slot in enumerate(slots):
            counts[slot.arm] += 1
            worst = max(worst, imbalance(counts, ratio))
            last_of_block = i + 1 == len(slots) or slots[i + 1].block != slot.block
            if last_of_block:
                in_block = sum(1 for s in slots if s.block == slot.block)
                blocks.append(
                    {
                        "block": slot.block,
                        "size": slot.block_size,
                        "complete": in_block == slot.block_size,
                        "end_sequence": slot.sequence,
                        "counts": dict(counts),
                        "imbalance": imbalance(counts, ratio),
                    }
                )
        entry: dict[str, Any] = {
            "slots": len(slots),
            "counts": dict(counts),
            "imbalance": imbalance(counts, ratio),
            "max_imbalance": worst,
            "blocks": blocks,
        }
        if key in used_counts:
            n = used_counts[key]
            if not 0 <= n <= len(slots):
                raise ValueError(f"used count {n} for stratum {key} is outside 0..{len(slots)}")
            used = dict.fromkeys(ratio, 0)
            for slot in slots[:n]:
                used[slot.arm] += 1
            entry["used"] = {"n": n, "counts": used, "imbalance": imbalance(used, ratio)}
        overall_max = max(overall_max, worst)
        report["strata"][key] = entry
    report["max_imbalance"] = overall_max
    return report


__all__ = [
    "ALGORITHM",
    "AllocationList",
    "RandomizationConfig",
    "Slot",
    "balance_report",
    "generate_list",
    "imbalance",
    "next_slot",
    "stratum_key",
]
