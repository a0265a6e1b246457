"""Backup and restore of the trial database, with a manifest that lets a restore prove itself.

An archive is a ``.tar.gz`` holding ``manifest.json`` and one payload: ``database.sqlite3``
(an online, consistent copy made with SQLite's backup API) or ``database.pgdump`` (a
``pg_dump`` custom-format dump). The manifest records the format version, the protocol in
force (version and SHA-256), the row count of every table, the audit chain's head and the
payload's SHA-256. A restore refuses a damaged archive and a non-empty target, restores,
then recounts every table and re-verifies the audit hash chain against the manifest.

Django must be set up (``ildtrial.edc.setup()``) before these functions are called.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SQLITE_PAYLOAD = "database.sqlite3"
PG_PAYLOAD = "database.pgdump"
_CHECK_ALIAS = "ildtrial_backup_check"


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why, for the operator."""


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    target: str
    counts: dict[str, int] = field(default_factory=dict)
    count_mismatches: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    audit_checked: int = 0
    audit_head: tuple[int, str] = (0, "")
    audit_break: str = ""

    @property
    def ok(self) -> bool:
        head = self.manifest.get("audit_head", {})
        same_head = (self.audit_head[0], self.audit_head[1]) == (head.get("sequence"), head.get("hash"))
        return not self.count_mismatches and not self.audit_break and same_head

    def summary(self) -> str:
        head = self.manifest.get("audit_head", {})
        lines = [
            f"restored {self.manifest.get('engine')} backup of {self.manifest.get('created_at')} into {self.target}",
            f"protocol {self.manifest.get('protocol', {}).get('version')} "
            f"({str(self.manifest.get('protocol', {}).get('sha256', ''))[:12]})",
            f"tables: {len(self.counts)}, rows: {sum(self.counts.values())}, "
            f"mismatches: {len(self.count_mismatches)}",
        ]
        for table, (expected, found) in sorted(self.count_mismatches.items()):
            lines.append(f"  row count mismatch in {table}: manifest {expected}, restored {found}")
        if self.audit_break:
            lines.append(f"audit trail BROKEN after {self.audit_checked} good entries: {self.audit_break}")
        else:
            lines.append(f"audit trail verified: {self.audit_checked} entries, head #{self.audit_head[0]} "
                         f"{self.audit_head[1][:16]}")
        if (self.audit_head[0], self.audit_head[1]) != (head.get("sequence"), head.get("hash")):
            lines.append(f"audit head differs from manifest (#{head.get('sequence')} {str(head.get('hash'))[:16]})")
        lines.append("restore OK" if self.ok else "restore FAILED checks")
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _alias_for(settings_dict: dict[str, Any]) -> Iterator[str]:
    """A temporary Django connection alias to another database (the copy or restore target)."""
    from django.db import connections

    connections.settings[_CHECK_ALIAS] = {**settings_dict}
    try:
        connections[_CHECK_ALIAS].connect()  # opened here, explicitly, and closed below
        yield _CHECK_ALIAS
    finally:
        try:
            connections[_CHECK_ALIAS].close()
            del connections[_CHECK_ALIAS]
        except (AttributeError, KeyError):
            pass
        connections.settings.pop(_CHECK_ALIAS, None)


def table_counts(alias: str = "default") -> dict[str, int]:
    """Rows in every table of the database behind ``alias``."""
    from django.db import connections

    connection = connections[alias]
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            counts[table] = int(cursor.fetchone()[0])
    return counts


def audit_head(alias: str = "default") -> tuple[int, str]:
    from ildtrial.edc.audit.models import AuditHead

    row = AuditHead.objects.using(alias).filter(pk=1).values_list("sequence", "entry_hash").first()
    return (int(row[0]), str(row[1])) if row else (0, "")


def verify_audit(alias: str = "default") -> Any:
    """The audit chain check of ``ildtrial.edc.audit.services.verify``, on any connection alias."""
    from ildtrial.core.audit_chain import verify_chain
    from ildtrial.edc.audit.models import AuditEntry

    entries = (e.sealed() for e in AuditEntry.objects.using(alias).order_by("sequence").iterator(chunk_size=2000))
    return verify_chain(entries, head=audit_head(alias))


def _protocol() -> dict[str, str]:
    try:
        from ildtrial.edc.study.protocol import loaded_protocol

        loaded = loaded_protocol()
        return {"version": str(loaded.version), "sha256": loaded.sha256}
    except Exception as exc:  # noqa: BLE001 - a backup must not fail because the protocol file moved
        return {"version": "", "sha256": "", "error": str(exc)[:200]}


def _manifest(engine: str, payload: Path, counts: dict[str, int], head: tuple[int, str]) -> dict[str, Any]:
    from ildtrial import __version__

    return {
        "format_version": FORMAT_VERSION,
        "engine": engine,
        "software_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "protocol": _protocol(),
        "tables": counts,
        "audit_head": {"sequence": head[0], "hash": head[1]},
        "payload": {"name": payload.name, "sha256": _sha256(payload), "bytes": payload.stat().st_size},
    }


def _pack(out: Path, payload: Path, manifest: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with tarfile.open(partial, "w:gz") as tar:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o600
        tar.addfile(info, io.BytesIO(data))
        tar.add(payload, arcname=payload.name)
    os.replace(partial, out)


def pg_bin(tool: str) -> str:
    """Path of a PostgreSQL client tool matching the server (PG_BIN / ILDTRIAL_PG_BIN or the server major)."""
    from django.db import connection

    candidates = [os.environ.get("PG_BIN"), os.environ.get("ILDTRIAL_PG_BIN")]
    connection.ensure_connection()
    major = (connection.pg_version or 0) // 10000
    candidates.append(f"/usr/lib/postgresql/{major}/bin")
    candidates.append("/usr/lib/postgresql/15/bin")
    for directory in candidates:
        if directory and (Path(directory) / tool).exists():
            return str(Path(directory) / tool)
    found = shutil.which(tool)
    if found:
        return found
    raise BackupError(f"{tool} not found (set PG_BIN to the directory of the server's PostgreSQL {major} binaries)")


def _pg_args(settings_dict: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    if settings_dict.get("HOST"):
        args += ["-h", str(settings_dict["HOST"])]
    if settings_dict.get("PORT"):
        args += ["-p", str(settings_dict["PORT"])]
    if settings_dict.get("USER"):
        args += ["-U", str(settings_dict["USER"])]
    env = {**os.environ}
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    return args, env


# -- backup ----------------------------------------------------------------------------------


def create_backup(out: Path) -> dict[str, Any]:
    """Write a backup archive of the default database to ``out``; return its manifest."""
    from django.db import connection

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ildtrial-backup-") as tmp:
        if connection.vendor == "sqlite":
            payload = Path(tmp) / SQLITE_PAYLOAD
            connection.ensure_connection()
            target = sqlite3.connect(payload)
            try:
                connection.connection.backup(target)  # online and consistent: one snapshot
                target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            finally:
                target.close()
            # Count from the copy, so the manifest describes exactly what is in the archive.
            with _alias_for({**connection.settings_dict, "NAME": str(payload)}) as alias:
                counts, head = table_counts(alias), audit_head(alias)
            engine = "sqlite"
        elif connection.vendor == "postgresql":
            payload = Path(tmp) / PG_PAYLOAD
            counts, head = _pg_dump(payload)
            engine = "postgresql"
        else:  # pragma: no cover
            raise BackupError(f"backup of a {connection.vendor} database is not supported")
        manifest = _manifest(engine, payload, counts, head)
        _pack(out, payload, manifest)
    return manifest


def _pg_dump(payload: Path) -> tuple[dict[str, int], tuple[int, str]]:
    """pg_dump in the snapshot the counts were taken in, so manifest and dump agree."""
    from django.db import connection, transaction

    dump = pg_bin("pg_dump")
    args, env = _pg_args(connection.settings_dict)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
        counts, head = table_counts(), audit_head()
        result = subprocess.run(  # noqa: S603
            [dump, *args, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
             "-f", str(payload), str(connection.settings_dict["NAME"])],
            env=env, capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()[:2000]}")
    return counts, head


# -- restore ---------------------------------------------------------------------------------


def read_archive(archive: Path, into: Path) -> tuple[dict[str, Any], Path]:
    """Unpack ``archive`` into ``into`` and check it; return (manifest, payload path)."""
    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup archive")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
            if MANIFEST_NAME not in names:
                raise BackupError(f"{archive}: not an ildtrial backup (no {MANIFEST_NAME})")
            manifest = json.loads(tar.extractfile(MANIFEST_NAME).read())  # type: ignore[union-attr]
            payload_name = str(manifest.get("payload", {}).get("name", ""))
            if payload_name not in (SQLITE_PAYLOAD, PG_PAYLOAD) or payload_name not in names:
                raise BackupError(f"{archive}: the payload named in the manifest is missing")
            tar.extract(payload_name, path=into, filter="data")
    except BackupError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{archive}: archive is corrupted or truncated ({exc.__class__.__name__}: {exc})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{archive}: unsupported backup format version {manifest.get('format_version')!r}")
    payload = Path(into) / payload_name
    digest = _sha256(payload)
    if digest != manifest["payload"].get("sha256"):
        raise BackupError(f"{archive}: checksum mismatch for {payload_name} (manifest "
                          f"{str(manifest['payload'].get('sha256'))[:16]}…, archive {digest[:16]}…): "
                          "the backup is corrupted; refusing to restore it")
    return manifest, payload


def _check(report: RestoreReport, alias: str) -> RestoreReport:
    report.counts = table_counts(alias)
    for table, expected in report.manifest.get("tables", {}).items():
        found = report.counts.get(table)
        if found != expected:
            report.count_mismatches[table] = (int(expected), found)
    chain = verify_audit(alias)
    report.audit_checked = chain.checked
    report.audit_head = audit_head(alias)
    report.audit_break = str(chain.first_break) if chain.first_break else ""
    return report


def restore_backup(archive: Path, target: str | None = None) -> RestoreReport:
    """Restore ``archive`` into an empty database and check it against the manifest.

    ``target``: for SQLite a file path (default: the configured database file); for
    PostgreSQL a database name on the configured server (default: the configured database).
    """
    from django.db import connection

    with tempfile.TemporaryDirectory(prefix="ildtrial-restore-") as tmp:
        manifest, payload = read_archive(Path(archive), Path(tmp))
        if manifest["engine"] == "sqlite":
            if connection.vendor != "sqlite" and target is None:
                raise BackupError("a SQLite backup needs a SQLite target (give --target FILE)")
            return _restore_sqlite(manifest, payload, Path(target or connection.settings_dict["NAME"]))
        if manifest["engine"] == "postgresql":
            if connection.vendor != "postgresql":
                raise BackupError("a PostgreSQL backup needs DATABASE_URL to point at a PostgreSQL server")
            return _restore_pg(manifest, payload, target or str(connection.settings_dict["NAME"]))
        raise BackupError(f"unknown engine in manifest: {manifest['engine']!r}")


def _sqlite_is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type='table'").fetchone()[0] == 0
    finally:
        db.close()


def _restore_sqlite(manifest: dict[str, Any], payload: Path, target: Path) -> RestoreReport:
    from django.db import connection

    if not _sqlite_is_empty(target):
        raise BackupError(f"refusing to restore: the target database {target} is not empty")
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(payload, partial)
    os.replace(partial, target)
    settings_dict = {**connection.settings_dict, "NAME": str(target)} if connection.vendor == "sqlite" else {
        "ENGINE": "django.db.backends.sqlite3", "NAME": str(target), "OPTIONS": {}, "TIME_ZONE": None,
        "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False,
        "USER": "", "PASSWORD": "", "HOST": "", "PORT": "", "TEST": {}}
    with _alias_for(settings_dict) as alias:
        return _check(RestoreReport(manifest=manifest, target=str(target)), alias)


def _restore_pg(manifest: dict[str, Any], payload: Path, dbname: str) -> RestoreReport:
    from django.db import connection

    settings_dict = {**connection.settings_dict, "NAME": dbname}
    with _alias_for(settings_dict) as alias:
        from django.db import connections

        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
            if cursor.fetchone()[0]:
                raise BackupError(f"refusing to restore: the target database {dbname} is not empty")
        args, env = _pg_args(settings_dict)
        result = subprocess.run(  # noqa: S603
            [pg_bin("pg_restore"), *args, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             "-d", dbname, str(payload)],
            env=env, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_restore failed: {result.stderr.strip()[:2000]}")
        return _check(RestoreReport(manifest=manifest, target=f"postgresql database {dbname}"), alias)
