"""Backup and restore: a consistent copy with a manifest; a restore that proves itself."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

from ildtrial.ops.backup import (
    MANIFEST_NAME,
    BackupError,
    create_backup,
    restore_backup,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _audited_data(make_user) -> None:
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.study.models import Site

    make_user("study_coordinator")
    make_user("monitor", sites=("MOW01",))
    with acting_as(None, source="test", reason="backup test site"):
        site = Site.objects.create(code="BKP01", name="Backup site", city="Tver", country="RU")
        site.name = "Backup site (renamed)"
        site.save()


def _dump(path: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}  # noqa: S608
    finally:
        db.close()


def _repack(archive: Path, out: Path, payload_bytes: bytes | None = None) -> None:
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name != MANIFEST_NAME and payload_bytes is not None:
                data = payload_bytes
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))


@pytest.mark.sqlite_only
def test_backup_restore_round_trip_sqlite(make_user, tmp_path):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite round trip")
    from ildtrial.edc.audit.services import verify

    _audited_data(make_user)
    assert verify().ok
    archive = tmp_path / "b.tar.gz"
    manifest = create_backup(archive)
    assert manifest["format_version"] == 1
    assert manifest["protocol"]["sha256"] and manifest["protocol"]["version"]
    assert manifest["tables"]["audit_auditentry"] >= 4
    assert manifest["audit_head"]["sequence"] == manifest["tables"]["audit_auditentry"]
    assert manifest["created_at"]

    target = tmp_path / "restored.sqlite3"
    report = restore_backup(archive, str(target))
    assert report.ok, report.summary()
    assert report.audit_checked == manifest["tables"]["audit_auditentry"]
    assert "restore OK" in report.summary()
    assert _dump(Path(connection.settings_dict["NAME"])) == _dump(target)
    # The append-only triggers travel with the schema.
    db = sqlite3.connect(target)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_auditentry")
    db.close()

    # A second restore onto the now non-empty target is refused.
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(archive, str(target))


@pytest.mark.sqlite_only
def test_corrupted_archive_is_refused(make_user, tmp_path):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite archive")
    make_user("monitor")
    archive = tmp_path / "b.tar.gz"
    create_backup(archive)

    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        payload = bytearray(tar.extractfile("database.sqlite3").read())
    payload[-100] ^= 0xFF
    _repack(archive, tampered, bytes(payload))
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore_backup(tampered, str(tmp_path / "t1.sqlite3"))
    assert not (tmp_path / "t1.sqlite3").exists()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BackupError, match="corrupted or truncated"):
        restore_backup(truncated, str(tmp_path / "t2.sqlite3"))


@pytest.mark.sqlite_only
def test_backup_and_restore_commands(make_user, tmp_path, capsys):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite commands")
    from ildtrial.cli import main

    make_user("data_manager")
    archive = tmp_path / "cli.tar.gz"
    assert main(["backup", "--out", str(archive)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["restore", str(archive), "--target", str(tmp_path / "r.sqlite3")]) == 0
    assert "restore OK" in capsys.readouterr().out
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a backup")
    assert main(["restore", str(bad), "--target", str(tmp_path / "r2.sqlite3")]) == 2
    assert "corrupted" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs PostgreSQL")
def test_backup_restore_round_trip_postgres(make_user, tmp_path):
    from django.db import connection

    _audited_data(make_user)
    archive = tmp_path / "pg.tar.gz"
    manifest = create_backup(archive)
    assert manifest["engine"] == "postgresql"
    with tarfile.open(archive, "r:gz") as tar:
        assert json.loads(tar.extractfile(MANIFEST_NAME).read())["payload"]["name"] == "database.pgdump"
    name = f"{connection.settings_dict['NAME']}_restore"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        report = restore_backup(archive, name)
        assert report.ok, report.summary()
        assert report.counts == manifest["tables"]
        with pytest.raises(BackupError, match="not empty"):
            restore_backup(archive, name)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
