"""``ildtrial backup --out FILE`` and ``ildtrial restore FILE``: archive and restore the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="write a consistent backup archive (.tar.gz) with a manifest")
    backup.add_argument("--out", required=True, help="archive to write, e.g. backups/ildtrial-2026-01-01.tar.gz")
    backup.set_defaults(func=run_backup)
    restore = subparsers.add_parser("restore", help="restore a backup archive into an empty database and check it")
    restore.add_argument("archive", help="archive written by 'ildtrial backup'")
    restore.add_argument("--target", default=None,
                         help="SQLite: database file; PostgreSQL: database name (default: the configured one)")
    restore.set_defaults(func=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.ops.backup import BackupError, create_backup

    try:
        manifest = create_backup(Path(args.out))
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    head = manifest["audit_head"]
    print(f"wrote {args.out}: {manifest['engine']}, {len(manifest['tables'])} tables, "
          f"{sum(manifest['tables'].values())} rows, audit head #{head['sequence']} {head['hash'][:16]}, "
          f"sha256 {manifest['payload']['sha256'][:16]}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.ops.backup import BackupError, restore_backup

    try:
        report = restore_backup(Path(args.archive), args.target)
    except BackupError as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1
