"""The audit trail: every change recorded with who, when, old, new and why; tampering detected."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from ildtrial.edc.audit import context
from ildtrial.edc.audit.context import AuditContextMissing, ReasonRequired, acting_as, because
from ildtrial.edc.audit.models import AuditBypass, AuditEntry, append
from ildtrial.edc.audit.services import history, to_csv, verify
from ildtrial.edc.study.models import Site

pytestmark = pytest.mark.django_db


def new_site(code: str = "SPB01", actor=None) -> Site:
    with acting_as(actor, reason="test"):
        return Site.objects.create(code=code, name="Second site", city="Saint Petersburg", country="RU")


def test_create_is_recorded_with_who_and_new_values(make_user):
    coordinator = make_user("data_manager")
    site = new_site(actor=coordinator)
    entry = history("study.Site", site.pk)[-1]
    assert entry.action == "create"
    assert entry.actor_username == coordinator.username and entry.actor_role == "data_manager"
    assert entry.changes["city"] == [None, "Saint Petersburg"]
    assert entry.protocol_version == "1.0"
    assert entry.occurred_at is not None


def test_update_records_old_and_new_value_and_reason():
    site = new_site()
    with acting_as(None), because("city was misspelt"):
        site.city = "Sankt-Peterburg"
        site.save()
    entry = history("study.Site", site.pk)[-1]
    assert entry.action == "update"
    assert entry.changes == {"city": ["Saint Petersburg", "Sankt-Peterburg"]}
    assert entry.reason == "city was misspelt"


def test_update_without_reason_is_refused_and_nothing_changes():
    site = new_site()
    before = AuditEntry.objects.count()
    with acting_as(None), pytest.raises(ReasonRequired, match="reason: a reason is required to change city"):
        site.city = "Elsewhere"
        site.save()
    assert Site.objects.get(pk=site.pk).city == "Saint Petersburg"
    assert AuditEntry.objects.count() == before


def test_save_without_changes_writes_no_entry():
    site = new_site()
    before = AuditEntry.objects.count()
    with acting_as(None):
        site.save()
    assert AuditEntry.objects.count() == before


def test_change_without_an_actor_is_refused():
    with pytest.raises(AuditContextMissing):
        Site.objects.create(code="NOONE", name="x", city="y", country="RU")
    assert not Site.objects.filter(code="NOONE").exists()


def test_delete_is_recorded_with_old_values_and_needs_a_reason():
    site = new_site()
    pk = site.pk
    with acting_as(None), pytest.raises(ReasonRequired):
        site.delete()
    with acting_as(None, reason="created by mistake"):
        site.delete()
    entry = history("study.Site", pk)[-1]
    assert entry.action == "delete" and entry.reason == "created by mistake"
    assert entry.changes["code"] == ["SPB01", None]


def test_bulk_writes_that_would_skip_the_trail_are_refused():
    new_site()
    with pytest.raises(AuditBypass):
        Site.objects.filter(code="SPB01").update(city="x")
    with pytest.raises(AuditBypass):
        Site.objects.filter(code="SPB01").delete()


def test_membership_changes_are_recorded(make_user):
    user = make_user("monitor")
    site = new_site()
    with acting_as(None, reason="monitor covers the second site"):
        user.sites.add(site)
    entry = history("accounts.User", user.pk)[-1]
    assert entry.changes == {"sites": {"added": [str(site.pk)]}}


def test_password_changes_are_recorded_but_masked(make_user):
    user = make_user("monitor")
    with acting_as(None, reason="reset"):
        user.set_password("Another-Strong-Pass-9")
        user.save()
    entry = history("accounts.User", user.pk)[-1]
    assert entry.changes["password"] == ["***", "***"]


def test_chain_verifies_after_changes():
    new_site()
    report = verify()
    assert report.ok and report.checked == AuditEntry.objects.count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_form_one_chain():
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                with acting_as(None):
                    append(action="test", model="test.Thread", object_pk=f"{n}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert AuditEntry.objects.filter(model="test.Thread").count() == 40
    assert verify().ok


def test_database_refuses_update_and_delete_of_audit_entries():
    new_site()
    entry = AuditEntry.objects.order_by("-sequence").first()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET reason = 'forged' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).reason == entry.reason


def _disable_triggers(cursor) -> None:
    if connection.vendor == "postgresql":
        cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER USER")
    else:
        cursor.execute("DROP TRIGGER audit_entry_no_update")
        cursor.execute("DROP TRIGGER audit_entry_no_delete")


def test_tampering_with_a_stored_value_is_detected_and_named():
    for code in ("T1", "T2", "T3"):
        new_site(code)
    target = AuditEntry.objects.filter(model="study.Site").order_by("sequence")[1]
    with connection.cursor() as cursor:
        _disable_triggers(cursor)
        cursor.execute("UPDATE audit_auditentry SET reason = 'nothing to see' WHERE id = %s", [target.pk])
    report = verify()
    assert not report.ok
    assert report.first_break.sequence == target.sequence


def test_deleting_the_newest_entries_is_detected():
    for code in ("T1", "T2"):
        new_site(code)
    last = AuditEntry.objects.order_by("-sequence").first()
    with connection.cursor() as cursor:
        _disable_triggers(cursor)
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [last.pk])
    report = verify()
    assert not report.ok and "removed" in report.first_break.problem


def test_csv_export_neutralises_formulas():
    with acting_as(None, reason="=HYPERLINK(\"http://evil\")"):
        Site.objects.create(code="F1", name="=1+2", city="@SUM(A1)", country="RU")
    body = to_csv(AuditEntry.objects.filter(model="study.Site", object_pk__isnull=False))
    assert "'=1+2" in body and "'@SUM(A1)" in body and "'=HYPERLINK" in body
    assert ",=1+2" not in body


def test_context_is_restored_after_the_block():
    assert context.current() is None
    with acting_as(None, reason="outer"):
        with because("inner"):
            assert context.current().reason == "inner"
        assert context.current().reason == "outer"
    assert context.current() is None
