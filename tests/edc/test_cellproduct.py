"""Cell product: lots and release, the append-only ledger, bag preparation, the bedside check,
traceability and recall — and, throughout, that a blinded person cannot tell cells from saline."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.audit.models import AuditBypass
from ildtrial.edc.cellproduct import services
from ildtrial.edc.cellproduct.models import (
    Donor,
    LedgerEntry,
    LedgerIsAppendOnly,
    LedgerKind,
    Lot,
    Preparation,
)
from ildtrial.edc.errors import Denied, InputRefused
from ildtrial.edc.esign.services import SignatureRefused
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.study.protocol import _load
from ildtrial.edc.visits import services as visits
from tests.conftest import PASSWORD, sign_in
from tests.edc.test_enrolment import randomized

pytestmark = pytest.mark.django_db

STORE = "LN2 tank 1"
PASSING = {
    "viability": ("92", "%"), "sterility": ("no growth", ""), "mycoplasma": ("not detected", ""),
    "endotoxin": ("0.2", "EU/mL"), "cd73": ("98.5", "%"), "cd90": ("99", "%"), "cd105": ("97", "%"),
    "cd34": ("0.5", "%"), "cd45": ("0.8", "%"),
}
#: words that would tell a blinded reader which product a bag holds
ARM_WORDS = ("msc", "pbo", "placebo", "mesenchymal", "saline", "nacl", "stem cell")


@pytest.fixture
def team(make_user):
    return {
        "coordinator": make_user("study_coordinator"),
        "investigator": make_user("investigator"),
        "monitor": make_user("monitor"),
        "statistician": make_user("unblinded_statistician", sites=()),
        "cell_lab": make_user("cell_lab"),
    }


@pytest.fixture
def allocation_list(team):
    with acting_as(team["statistician"], reason="list"):
        return randomization.generate(team["statistician"], seed=20151102)


@pytest.fixture
def double_blind():
    _load.cache_clear()
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        yield
    _load.cache_clear()


@pytest.fixture
def arms(team, allocation_list):
    """One randomized participant in each arm (screened three days ago, first infusion pending)."""
    found: dict[str, object] = {}
    for _ in range(8):
        p = randomized(team, days_ago=3)
        found.setdefault(p.allocation.arm, p)
        if len(found) == 2:
            return found
    raise AssertionError("the list gave one arm only")


def released_lot(lab, number: str = "L-0001", donor_code: str = "D-1001", failing: dict | None = None,
                 release: bool = True, vials: int = 10) -> Lot:
    """A lot of 100 × 10^6 cells per vial, received at STORE, tested (all pass unless ``failing``), released."""
    with acting_as(lab):
        donor = Donor.objects.filter(code=donor_code).first() or services.register_donor(lab, donor_code)
        lot = services.register_lot(lab, donor, number=number, manufactured_on=timezone.localdate() - timedelta(days=30),
                                    expires_on=timezone.localdate() + timedelta(days=300),
                                    cells_per_vial_millions=Decimal("100"), vials=vials, location=STORE)
        for kind, (value, unit) in {**PASSING, **(failing or {})}.items():
            passed = (failing or {}).get(kind) is None
            services.record_release_test(lab, lot, kind, passed=passed, value=value, unit=unit,
                                         tested_on=timezone.localdate() - timedelta(days=5))
        if release:
            services.release_lot(lab, lot, PASSWORD)
    lot.refresh_from_db()
    return lot


def prepare(lab, participant, lot: Lot | None = None, visit: str = "C1A", **overrides) -> Preparation:
    """Prepare the participant's bag the way their arm needs (cells from ``lot``, or saline)."""
    now = timezone.now()
    if participant.allocation.arm == "MSC":
        values = {"lot": lot, "thawed_at": now - timedelta(minutes=40), "post_thaw_viability_percent": "91.5",
                  "cell_count_millions": "201", "volume_ml": "400"}
    else:
        values = {"saline_batch": "NaCl-2024-17"}
    values.update(overrides)
    with acting_as(lab):
        return services.record_preparation(lab, participant, visit, prepared_at=now - timedelta(minutes=10),
                                           location=STORE, **values)


BAG_ID = re.compile(r"B-[A-Z2-7]{8}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")


def no_arm_in(text: str, *also: str) -> None:
    """None of the product words (nor the lot or donor given) in ``text``; random bag ids are left out first."""
    lowered = BAG_ID.sub("", text).lower()
    for word in (*ARM_WORDS, *(a.lower() for a in also)):
        assert word not in lowered, (word, text)


def main(body: bytes) -> str:
    """The page's own content (the footer carries the trial's short title, which names the product)."""
    return re.split(r'<main id="main"[^>]*>', body.decode(), maxsplit=1)[1].split("</main>", 1)[0]


def same_shape(a: str, b: str, *pairs: tuple[str, str]) -> None:
    """``a`` and ``b`` are identical once each (from, to) pair of identifiers is swapped in ``b``
    and times are set aside (two bags prepared a moment apart may straddle a minute)."""
    for theirs, ours in pairs:
        b = b.replace(theirs, ours)
    assert TIMESTAMP.sub("<time>", a) == TIMESTAMP.sub("<time>", b)


# ---------------------------------------------------------------- lots and release
def test_full_chain_donor_lot_bag_participant_is_traceable_both_ways(team, arms):
    lab, msc = team["cell_lab"], arms["MSC"]
    lot = released_lot(lab)
    assert services.usability_problems(lot) == []
    assert lot.release_signature.signer == lab and "L-0001" in lot.release_signature.meaning
    bag = prepare(lab, msc, lot)
    assert re.fullmatch(r"B-[A-Z2-7]{8}", bag.bag_id)
    assert bag.expires_at == bag.prepared_at + services.BAG_SHELF_LIFE
    assert services.stock_of(lot) == {STORE: 8}  # 10 received, 2 thawed for 200 × 10^6
    coordinator = team["coordinator"]
    given_at = timezone.now() - timedelta(minutes=2)
    with acting_as(coordinator):
        assert services.check_bag(coordinator, msc, "C1A", bag.bag_id.lower(), given_at) == bag
        entry = services.record_administration(coordinator, bag, given_at)
    assert entry.kind == LedgerKind.ADMINISTERED and entry.bag == bag and entry.lot == lot
    assert [e.kind for e in bag.ledger.order_by("pk")] == ["thawed", "prepared", "dispensed", "administered"]
    rows, unblinded = services.participant_trace(lab, msc)
    assert unblinded and [(r.bag_id, r.lot, r.donor, r.state) for r in rows] == [
        (bag.bag_id, "L-0001", "D-1001", "administered")]
    for exposed in (services.recall(lab, lot=lot), services.recall(lab, donor=lot.donor)):
        assert [(r.participant, r.bag_id, r.state) for r in exposed] == [(msc.label, bag.bag_id, "administered")]
    csv = services.to_csv(services.recall(lab, lot=lot), True)
    assert msc.label in csv and "L-0001" in csv and "D-1001" in csv


def test_a_lot_cannot_be_released_with_a_failed_or_missing_release_test(team):
    lab = team["cell_lab"]
    with pytest.raises(InputRefused, match="Sterility test failed"):
        released_lot(lab, failing={"sterility": ("growth of S. epidermidis", "")})
    lot = Lot.objects.get(number="L-0001")
    assert not lot.released
    with acting_as(lab):
        donor = services.register_donor(lab, "D-2002")
        untested = services.register_lot(lab, donor, number="L-0002", manufactured_on=timezone.localdate(),
                                         expires_on=timezone.localdate() + timedelta(days=90),
                                         cells_per_vial_millions=100, vials=4, location=STORE)
        with pytest.raises(InputRefused, match="Mycoplasma test is not recorded"):
            services.release_lot(lab, untested, PASSWORD)


def test_release_needs_the_qualified_persons_password(team):
    lab = team["cell_lab"]
    lot = released_lot(lab, release=False)
    with acting_as(lab), pytest.raises(SignatureRefused, match="password"):
        services.release_lot(lab, lot, "wrong")
    lot.refresh_from_db()
    assert not lot.released


def test_release_test_results_must_agree_with_the_specification(team):
    lab = team["cell_lab"]
    lot = released_lot(lab, release=False)
    with acting_as(lab):
        with pytest.raises(InputRefused, match="passed: 80 % fails the specification"):
            services.record_release_test(lab, lot, "cd90", passed=True, value="80", unit="%",
                                         tested_on=timezone.localdate(), reason="re-read")
        with pytest.raises(InputRefused, match="reason"):
            services.record_release_test(lab, lot, "cd90", passed=True, value="99.5", unit="%",
                                         tested_on=timezone.localdate())


def test_donor_codes_are_pseudonymous(team):
    with acting_as(team["cell_lab"]), pytest.raises(InputRefused, match="pseudonymous"):
        services.register_donor(team["cell_lab"], "Ivanov")


def test_preparation_refuses_an_unreleased_lot(team, arms):
    lab = team["cell_lab"]
    lot = released_lot(lab, release=False)
    with pytest.raises(InputRefused, match="lot: lot L-0001 cannot be used: it is not released"):
        prepare(lab, arms["MSC"], lot)
    assert not Preparation.objects.exists() and services.stock_of(lot) == {STORE: 10}


def test_preparation_refuses_an_expired_lot(team, arms):
    lab = team["cell_lab"]
    lot = released_lot(lab)
    with acting_as(None, reason="test: the lot's shelf life ran out after release"):
        lot.expires_on = timezone.localdate() - timedelta(days=1)
        lot.save()
    with pytest.raises(InputRefused, match="lot: .*it expired on"):
        prepare(lab, arms["MSC"], lot)


def test_preparation_refuses_a_lot_with_a_failed_release_test(team, arms):
    lab = team["cell_lab"]
    with pytest.raises(InputRefused):
        released_lot(lab, failing={"endotoxin": ("2.4", "EU/mL")})
    lot = Lot.objects.get(number="L-0001")
    with pytest.raises(InputRefused, match="lot: .*the Endotoxin test failed"):
        prepare(lab, arms["MSC"], lot)


def test_post_thaw_viability_below_the_protocol_minimum_is_refused_and_at_it_accepted(team, arms):
    lab = team["cell_lab"]
    lot = released_lot(lab)
    with pytest.raises(InputRefused, match=r"post_thaw_viability_percent: post-thaw viability 69 % is below the "
                                           r"protocol minimum of 70 %"):
        prepare(lab, arms["MSC"], lot, post_thaw_viability_percent="69")
    assert not Preparation.objects.exists()
    bag = prepare(lab, arms["MSC"], lot, post_thaw_viability_percent="70")
    assert bag.post_thaw_viability_percent == Decimal("70")


@pytest.mark.parametrize(("count", "accepted"), [("179.9", False), ("180", True), ("220", True), ("221", False)])
def test_dose_must_be_within_the_tolerance_of_200_million_cells(team, arms, count, accepted):
    lab = team["cell_lab"]
    lot = released_lot(lab)
    assert Decimal("0.10") == services.DOSE_TOLERANCE
    if accepted:
        assert prepare(lab, arms["MSC"], lot, cell_count_millions=count).cell_count_millions == Decimal(count)
    else:
        with pytest.raises(InputRefused, match=r"cell_count_millions: .* outside the dose of 200 × 10\^6 ± 10 % "
                                               r"\(180–220 × 10\^6\)"):
            prepare(lab, arms["MSC"], lot, cell_count_millions=count)


def test_placebo_bag_is_400_ml_saline_with_no_lot(team, arms):
    lab = team["cell_lab"]
    bag = prepare(lab, arms["PBO"])
    assert bag.lot is None and bag.volume_ml == Decimal("400") and bag.saline_batch == "NaCl-2024-17"
    assert [e.kind for e in bag.ledger.order_by("pk")] == ["prepared", "dispensed"]
    with pytest.raises(InputRefused, match="volume_ml: the saline bag holds 400 mL"):
        prepare(lab, arms["PBO"], visit="C1B", volume_ml="250")


def test_double_blind_cell_bags_must_have_the_placebo_volume(double_blind, team, arms):
    lab = team["cell_lab"]
    lot = released_lot(lab)
    with pytest.raises(InputRefused, match="volume_ml: the trial is double blind: make the cell suspension up to "
                                           "400 mL"):
        prepare(lab, arms["MSC"], lot, volume_ml="100")
    assert prepare(lab, arms["MSC"], lot).volume_ml == Decimal("400")


def test_open_label_cell_bags_may_have_their_own_volume(team, arms):
    lot = released_lot(team["cell_lab"])
    assert prepare(team["cell_lab"], arms["MSC"], lot, volume_ml="100").volume_ml == Decimal("100")


def test_a_second_bag_for_the_same_visit_is_refused_while_the_first_is_usable(team, arms):
    lab = team["cell_lab"]
    prepare(lab, arms["PBO"])
    with pytest.raises(InputRefused, match="destroy or return it before preparing another"):
        prepare(lab, arms["PBO"])


# ---------------------------------------------------------------- permissions
def test_coordinator_cannot_record_a_preparation_and_cell_lab_can(client, team, arms):
    coordinator = team["coordinator"]
    with acting_as(coordinator), pytest.raises(Denied):
        services.record_preparation(coordinator, arms["PBO"], "C1A", prepared_at=timezone.now(), location=STORE,
                                    saline_batch="x")
    sign_in(client, coordinator)
    url = f"/cell-product/prepare/{arms['PBO'].pk}/C1A/"
    assert client.post(url, {"location": STORE, "saline_batch": "x", "prepared_at": "2024-01-01T10:00"}
                       ).status_code == 403
    assert not Preparation.objects.exists()
    client.logout()
    sign_in(client, team["cell_lab"])
    prepared_at = timezone.localtime() - timedelta(minutes=5)
    response = client.post(url, {"location": STORE, "saline_batch": "NaCl-1",
                                 "prepared_at": prepared_at.strftime("%Y-%m-%dT%H:%M")})
    bag = Preparation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/cell-product/bags/{bag.bag_id}/label/"


def test_cell_lab_cannot_check_bags_at_the_bedside(team, arms):
    lab = team["cell_lab"]
    bag = prepare(lab, arms["PBO"])
    with acting_as(lab), pytest.raises(Denied):
        services.check_bag(lab, arms["PBO"], "C1A", bag.bag_id, timezone.now())


def test_ledger_pages_are_for_the_cell_lab_only(client, team):
    for role in ("coordinator", "investigator", "monitor"):
        client.logout()
        sign_in(client, team[role])
        for url in ("/cell-product/lots/", "/cell-product/ledger/"):
            assert client.get(url).status_code == 403, (role, url)
    client.logout()
    sign_in(client, team["cell_lab"])
    assert client.get("/cell-product/lots/").status_code == 200
    assert client.get("/cell-product/ledger/").status_code == 200


# ---------------------------------------------------------------- bedside
def _refusal(user, participant, visit: str, bag_id: str, at) -> str:  # noqa: ANN001
    with acting_as(user), pytest.raises(InputRefused) as caught:
        services.check_bag(user, participant, visit, bag_id, at)
    assert caught.value.field == "bag_id" and str(caught.value).startswith("bag_id: ")
    return caught.value.message


@pytest.fixture
def bedside(team, arms):
    """A bag for each participant's C1A; returns (coordinator, bags by arm, a time at which both are usable)."""
    lab = team["cell_lab"]
    lot = released_lot(lab)
    bags = {"MSC": prepare(lab, arms["MSC"], lot), "PBO": prepare(lab, arms["PBO"])}
    return team["coordinator"], bags, timezone.now() - timedelta(minutes=1)


def _both_arms(arms, bags, message_of) -> str:  # noqa: ANN001
    """The refusal for the cell bag and for the saline bag: product-free, and word for word the same."""
    messages = {arm: message_of(arms[arm], bags[arm]) for arm in ("MSC", "PBO")}
    for message in messages.values():
        no_arm_in(message, "L-0001", "D-1001")
    same_shape(messages["MSC"], messages["PBO"], (bags["PBO"].bag_id, bags["MSC"].bag_id),
               (arms["PBO"].label, arms["MSC"].label))
    return messages["MSC"]


def test_bedside_refuses_a_bag_of_another_participant(team, arms, bedside):
    coordinator, bags, at = bedside
    other = {"MSC": arms["PBO"], "PBO": arms["MSC"]}

    def message(p, bag):  # noqa: ANN001, ANN202
        return _refusal(coordinator, other[p.allocation.arm], "C1A", bag.bag_id, at)

    messages = {arm: message(arms[arm], bags[arm]) for arm in ("MSC", "PBO")}
    for text in messages.values():
        assert "another participant" in text
        no_arm_in(text, "L-0001", "D-1001")
    same_shape(messages["MSC"], messages["PBO"], (bags["PBO"].bag_id, bags["MSC"].bag_id),
               (arms["MSC"].label, arms["PBO"].label))


def test_bedside_refuses_a_bag_of_another_visit(arms, bedside):
    coordinator, bags, at = bedside
    text = _both_arms(arms, bags, lambda p, bag: _refusal(coordinator, p, "C1B", bag.bag_id, at))
    assert "was prepared for visit C1A, not C1B" in text


def test_bedside_refuses_an_expired_bag(arms, bedside):
    coordinator, bags, _at = bedside
    text = _both_arms(arms, bags, lambda p, bag: _refusal(
        coordinator, p, "C1A", bag.bag_id, bag.expires_at + timedelta(minutes=1)))
    assert "expired at" in text


def test_bedside_refuses_an_unknown_bag(arms, bedside):
    coordinator, _bags, at = bedside
    text = _refusal(coordinator, arms["MSC"], "C1A", "B-AAAAAAAA", at)
    assert "B-AAAAAAAA is not known" in text
    no_arm_in(text)
    assert _refusal(coordinator, arms["MSC"], "C1A", "  ", at).startswith("scan or type")


def test_bedside_refuses_a_bag_already_administered(arms, bedside):
    coordinator, bags, at = bedside
    with acting_as(coordinator):
        for bag in bags.values():
            services.record_administration(coordinator, bag, at)
    text = _both_arms(arms, bags, lambda p, bag: _refusal(coordinator, p, "C1A", bag.bag_id, at))
    assert "already administered" in text
    with acting_as(coordinator), pytest.raises(InputRefused, match="bag_id: .*already administered"):
        services.record_administration(coordinator, bags["MSC"], at)
    assert LedgerEntry.objects.filter(kind=LedgerKind.ADMINISTERED).count() == 2


def test_bedside_page_shows_ok_or_the_refusal(client, arms, bedside):
    coordinator, bags, _at = bedside
    sign_in(client, coordinator)
    when = (timezone.localtime() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    ok = main(client.post("/cell-product/bedside/", {"participant": arms["PBO"].pk, "visit_code": "C1A",
                                                     "bag_id": bags["PBO"].bag_id, "at": when}).content)
    assert "✔ OK" in ok and bags["PBO"].bag_id in ok
    refused = main(client.post("/cell-product/bedside/", {"participant": arms["PBO"].pk, "visit_code": "C1A",
                                                          "bag_id": bags["MSC"].bag_id, "at": when}).content)
    assert "Do not infuse" in refused and "Bag identifier:" in refused and "another participant" in refused


# ---------------------------------------------------------------- ledger
def test_ledger_entries_cannot_be_updated_or_deleted(team):
    lab = team["cell_lab"]
    lot = released_lot(lab, release=False)
    entry = LedgerEntry.objects.get(lot=lot, kind=LedgerKind.RECEIVED)
    entry.quantity = 99
    with acting_as(lab, reason="try"):
        with pytest.raises(LedgerIsAppendOnly):
            entry.save()
        with pytest.raises(LedgerIsAppendOnly):
            entry.delete()
        with pytest.raises(AuditBypass):
            LedgerEntry.objects.filter(pk=entry.pk).update(quantity=99)
        with pytest.raises(AuditBypass):
            LedgerEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.quantity == 10


def test_a_correction_is_a_new_entry_with_a_reason_referring_to_the_corrected_one(team):
    lab = team["cell_lab"]
    lot = released_lot(lab, release=False)
    received = LedgerEntry.objects.get(lot=lot, kind=LedgerKind.RECEIVED)
    with acting_as(lab):
        with pytest.raises(InputRefused, match="reason"):
            services.correct(lab, received, delta=-1, reason=" ")
        fix = services.correct(lab, received, delta=-1, reason="one vial was counted twice on receipt")
        with pytest.raises(InputRefused, match="quantity: lot L-0001 has 9 vial"):
            services.record_movement(lab, LedgerKind.THAWED, location=STORE, occurred_at=timezone.now(), lot=lot,
                                     quantity=10)
    assert fix.kind == LedgerKind.CORRECTION and fix.corrects == received and fix.delta == -1
    assert services.stock_of(lot) == {STORE: 9} and LedgerEntry.objects.filter(lot=lot).count() == 2


_LOCATIONS = st.sampled_from(["LN2 tank 1", "LN2 tank 2", "quarantine shelf"])
_MOVES = st.one_of(
    st.tuples(st.sampled_from(["received", "returned", "thawed", "destroyed"]), _LOCATIONS,
              st.integers(1, 6), st.none()),
    st.tuples(st.just("stored"), _LOCATIONS, st.integers(1, 6), _LOCATIONS),
    st.tuples(st.just("correction"), _LOCATIONS, st.integers(-4, 4), st.none()),
)


def _move(lab, lot: Lot, kind: str, location: str, n: int, source: str | None) -> LedgerEntry:  # noqa: ANN001
    if kind == "correction":
        anchor = LedgerEntry.objects.filter(lot=lot).first()
        return services.correct(lab, anchor, delta=n, reason="recount", location=location)
    return services.record_movement(lab, kind, location=location, occurred_at=timezone.now(), lot=lot, quantity=n,
                                    from_location=source or "", reason="test")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(moves=st.lists(_MOVES, max_size=12))
def test_derived_stock_always_equals_the_sum_of_the_ledger_movements(team, moves):
    lab = team["cell_lab"]
    with acting_as(lab):
        donor = Donor.objects.filter(code="D-9999").first() or services.register_donor(lab, "D-9999")
        lot = services.register_lot(lab, donor, number=f"P-{Lot.objects.count() + 1}",
                                    manufactured_on=timezone.localdate(), expires_on=date(2099, 1, 1),
                                    cells_per_vial_millions=100, vials=5, location="LN2 tank 1")
    expected = {"LN2 tank 1": 5}
    for kind, location, n, source in moves:
        if kind == "stored":
            assert source is not None
            refused = source == location or expected.get(source, 0) < n
            change = {source: -n, location: n}
        else:
            gain = n if kind in ("received", "returned", "correction") else -n
            refused = gain < 0 and expected.get(location, 0) < -gain
            change = {location: gain}
        with acting_as(lab):
            if refused:
                with pytest.raises(InputRefused):
                    _move(lab, lot, kind, location, n, source)
                continue
            _move(lab, lot, kind, location, n, source)
        for place, d in change.items():
            expected[place] = expected.get(place, 0) + d
    derived = services.stock_of(lot)
    assert derived == {k: v for k, v in expected.items() if v}
    summed: dict[str, int] = {}
    for entry in LedgerEntry.objects.filter(lot=lot):
        for place, d in entry.movements():
            summed[place] = summed.get(place, 0) + d
    assert derived == {k: v for k, v in summed.items() if v}
    assert all(v >= 0 for v in derived.values())


# ---------------------------------------------------------------- to prepare, masking
def test_to_prepare_lists_coming_infusions_with_the_product_for_the_lab(team, arms):
    lab, coordinator = team["cell_lab"], team["coordinator"]
    released_lot(lab)
    with acting_as(coordinator):
        visits.record_visit(coordinator, arms["MSC"], "C1A", timezone.localdate())
    with acting_as(lab):
        rows = {(r.participant.pk, r.visit.code): r for r in services.to_prepare(lab, days=7)}
    msc = rows[(arms["MSC"].pk, "C1B")]
    assert msc.due == timezone.localdate() + timedelta(days=7) and msc.cells
    assert msc.product.startswith("Bone marrow mesenchymal stem cells, 200 × 10^6 cells")
    assert [lot.number for lot in msc.lots] == ["L-0001"]
    pbo = rows[(arms["PBO"].pk, "C1A")]
    assert pbo.due is None and not pbo.cells and pbo.product == "Saline 0.9% NaCl, 400 mL"
    assert (arms["MSC"].pk, "C1A") not in rows  # done


def test_double_blind_to_prepare_page_is_the_lab_only(client, double_blind, team, arms):
    for role in ("coordinator", "investigator", "monitor"):
        client.logout()
        sign_in(client, team[role])
        assert client.get("/cell-product/").status_code == 403, role
        assert client.get(f"/cell-product/prepare/{arms['MSC'].pk}/C1A/").status_code == 403, role
    client.logout()
    sign_in(client, team["cell_lab"])
    page = main(client.get("/cell-product/").content)
    assert "<strong>MSC</strong>" in page and "<strong>PBO</strong>" in page


def test_double_blind_labels_look_the_same_for_cells_and_saline(client, double_blind, arms, bedside, team):
    _coordinator, bags, _at = bedside
    texts = {arm: services.label_text(bag) for arm, bag in bags.items()}
    for text in texts.values():
        no_arm_in(text, "L-0001", "D-1001")
    swap = ((bags["PBO"].bag_id, bags["MSC"].bag_id), (arms["PBO"].label, arms["MSC"].label))
    same_shape(texts["MSC"], texts["PBO"], *swap)
    for role in ("coordinator", "investigator", "monitor"):
        client.logout()
        sign_in(client, team[role])
        pages = {arm: main(client.get(f"/cell-product/bags/{b.bag_id}/label/").content) for arm, b in bags.items()}
        for page in pages.values():
            no_arm_in(page, "L-0001", "D-1001")
        same_shape(pages["MSC"], pages["PBO"], *swap)


def _verdict(page: str) -> str:
    """The bedside page's answer box (OK or the refusal)."""
    found = re.search(r'<div class="(?:card ok|error)" role="(?:status|alert)">.*?</div>', page, re.S)
    assert found, page
    return found.group(0)


def test_double_blind_bedside_messages_never_tell_the_product(client, double_blind, arms, bedside):
    coordinator, bags, _at = bedside
    sign_in(client, coordinator)
    when = (timezone.localtime() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    answers: dict[str, dict[str, str]] = {"ok": {}, "refused": {}}
    for arm, bag in bags.items():
        for outcome, visit in (("ok", "C1A"), ("refused", "C1B")):
            page = main(client.post("/cell-product/bedside/", {
                "participant": arms[arm].pk, "visit_code": visit, "bag_id": bag.bag_id, "at": when}).content)
            no_arm_in(page, "L-0001", "D-1001")
            answers[outcome][arm] = _verdict(page)
    assert "✔ OK" in answers["ok"]["MSC"] and "Do not infuse" in answers["refused"]["MSC"]
    for outcome in answers.values():
        same_shape(outcome["MSC"], outcome["PBO"], (bags["PBO"].bag_id, bags["MSC"].bag_id),
                   (arms["PBO"].label, arms["MSC"].label))


def test_double_blind_traceability_shows_blinded_users_bag_ids_only(client, double_blind, team, arms, bedside):
    coordinator, bags, at = bedside
    with acting_as(coordinator):
        for bag in bags.values():
            services.record_administration(coordinator, bag, at)
    for role in ("coordinator", "investigator", "monitor"):
        user = team[role]
        rows = {arm: services.participant_trace(user, arms[arm]) for arm in bags}
        for arm, (trace, unblinded) in rows.items():
            assert not unblinded and [r.bag_id for r in trace] == [bags[arm].bag_id]
            assert (trace[0].lot, trace[0].donor, trace[0].arm, trace[0].product) == ("", "", "", "")
        client.logout()
        sign_in(client, user)
        for arm in bags:
            page = main(client.get(f"/cell-product/participants/{arms[arm].pk}/").content)
            body = client.get(f"/cell-product/participants/{arms[arm].pk}/bags.csv").content.decode()
            assert bags[arm].bag_id in page and bags[arm].bag_id in body
            no_arm_in(page, "L-0001", "D-1001", "Lot", "Donor")
            no_arm_in(body, "L-0001", "D-1001", "lot", "donor")
            assert body.splitlines()[0] == ",".join(services.BLINDED_COLUMNS)
        lot = Lot.objects.get(number="L-0001")
        for url in (f"/cell-product/lots/{lot.pk}/recall/", f"/cell-product/lots/{lot.pk}/recall.csv",
                    f"/cell-product/donors/{lot.donor_id}/recall/", "/cell-product/lots/99999/recall/"):
            assert client.get(url).status_code == 403, (role, url)
        with pytest.raises(Denied):
            services.recall(user, lot=lot)
    client.logout()
    sign_in(client, team["cell_lab"])
    page = main(client.get(f"/cell-product/participants/{arms['MSC'].pk}/").content)
    assert "L-0001" in page and "D-1001" in page
    recall_csv = client.get(f"/cell-product/lots/{Lot.objects.get().pk}/recall.csv").content.decode()
    assert arms["MSC"].label in recall_csv and arms["PBO"].label not in recall_csv


def test_open_label_investigators_see_lots_and_can_recall(team, arms, bedside):
    _coordinator, bags, _at = bedside
    investigator = team["investigator"]
    rows, unblinded = services.participant_trace(investigator, arms["MSC"])
    assert unblinded and rows[0].lot == "L-0001"
    assert [r.bag_id for r in services.recall(investigator, lot=bags["MSC"].lot)] == [bags["MSC"].bag_id]


def test_emergency_unblinding_shows_that_participants_lots_to_the_investigator(double_blind, team, arms, bedside):
    _coordinator, _bags, _at = bedside
    pi = team["investigator"]
    assert not services.participant_trace(pi, arms["MSC"])[1]
    with acting_as(pi):
        randomization.emergency_unblind(pi, arms["MSC"], reason="anaphylaxis", password=PASSWORD)
    assert services.participant_trace(pi, arms["MSC"])[0][0].lot == "L-0001"
    assert not services.participant_trace(pi, arms["PBO"])[1]


def test_csv_exports_neutralise_formulas(team, arms):
    lab = team["cell_lab"]
    bag = prepare(lab, arms["PBO"], saline_batch="=HYPERLINK(\"http://x\")")
    rows, _ = services.participant_trace(lab, arms["PBO"])
    body = services.to_csv(rows, True)
    assert "'=HYPERLINK" in body and bag.bag_id in body


def test_double_blind_audit_trail_hides_cell_product_records_from_blinded_viewers(client, double_blind, team, arms):
    released_lot(team["cell_lab"])
    prepare(team["cell_lab"], arms["MSC"], Lot.objects.get())
    sign_in(client, team["monitor"])
    body = client.get("/audit/export.csv").content.decode()
    assert "cellproduct." not in body


def test_cell_lab_pages_register_test_release_and_move_stock(client, team, arms):
    lab = team["cell_lab"]
    sign_in(client, lab)
    assert client.post("/cell-product/lots/", {"action": "donor", "code": "d-3003"}).status_code == 302
    donor = Donor.objects.get(code="D-3003")
    today = timezone.localdate()
    response = client.post("/cell-product/lots/", {
        "action": "lot", "donor": donor.pk, "number": "L-0100", "manufactured_on": today - timedelta(days=10),
        "expires_on": today + timedelta(days=200), "cells_per_vial_millions": "50", "vials": "12",
        "location": STORE})
    lot = Lot.objects.get(number="L-0100")
    assert response["Location"] == f"/cell-product/lots/{lot.pk}/" and services.stock_of(lot) == {STORE: 12}
    for kind, (value, unit) in PASSING.items():
        assert client.post(f"/cell-product/lots/{lot.pk}/", {
            "action": "test", "kind": kind, "passed": "pass", "value": value, "unit": unit,
            "tested_on": today}).status_code == 302, kind
    page = main(client.post(f"/cell-product/lots/{lot.pk}/", {"action": "release", "password": "nope"}).content)
    assert "password is not correct" in page
    assert client.post(f"/cell-product/lots/{lot.pk}/", {"action": "release", "password": PASSWORD}
                       ).status_code == 302
    lot.refresh_from_db()
    assert lot.released and "Qualified-person release" in main(client.get(f"/cell-product/lots/{lot.pk}/").content)
    when = (timezone.localtime() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post("/cell-product/ledger/", {"kind": "stored", "lot": lot.pk, "quantity": "4", "location":
                                                 "LN2 tank 2", "from_location": STORE, "occurred_at": when}
                       ).status_code == 302
    assert services.stock_of(lot) == {STORE: 8, "LN2 tank 2": 4}
    refused = main(client.post("/cell-product/ledger/", {"kind": "thawed", "lot": lot.pk, "quantity": "5",
                                                         "location": "LN2 tank 2", "occurred_at": when}).content)
    assert "has 4 vial(s) at LN2 tank 2" in refused
    stored = LedgerEntry.objects.get(kind="stored")
    client.post("/cell-product/ledger/correct/", {"entry": stored.pk, "delta": "-1", "reason": "miscount"})
    assert services.stock_of(lot) == {STORE: 8, "LN2 tank 2": 3}
    ledger = main(client.get("/cell-product/ledger/").content)
    assert f"corrects no. {stored.pk}" in ledger and "miscount" in ledger
    for arm, field in (("MSC", "post_thaw_viability_percent"), ("PBO", "saline_batch")):
        page = main(client.get(f"/cell-product/prepare/{arms[arm].pk}/C1A/").content)
        assert f'name="{field}"' in page and "4 h after preparation" in page
        assert ('name="lot"' in page) == (arm == "MSC")
    page = main(client.get(f"/cell-product/prepare/{arms['MSC'].pk}/C1A/").content)
    assert "L-0100" in page
    for url in ("/cell-product/", "/cell-product/lots/", f"/cell-product/lots/{lot.pk}/recall/",
                f"/cell-product/donors/{donor.pk}/recall/", f"/cell-product/participants/{arms['MSC'].pk}/"):
        assert client.get(url).status_code == 200, url
