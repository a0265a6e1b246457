"""Run a command against a throwaway PostgreSQL 15 cluster, then remove the cluster.

``python scripts/with_postgres.py -- pytest ...`` creates a cluster in a private temporary
directory (unix socket there, TCP only on 127.0.0.1 at a free port), sets DATABASE_URL
for the command, and always stops and deletes the cluster afterwards. initdb refuses to
run as root, so as root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError: the postgresql package is not installed
    return ["runuser", "-u", "postgres", "--"]


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: with_postgres.py -- COMMAND ...", file=sys.stderr)
        return 2
    if not (PG_BIN / "initdb").exists():
        print(f"PostgreSQL binaries not found in {PG_BIN} (install the postgresql package)", file=sys.stderr)
        return 2
    prefix = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="ildtrial-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if prefix:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    try:
        subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, stdout=subprocess.DEVNULL, env=env)
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                        "-w", "-t", "60", "start"], check=True, stdout=subprocess.DEVNULL, env=env)
        for _ in range(50):
            if subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "ildtrial"],
                       check=True, env=env)
        child_env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/ildtrial",
                     "ILDTRIAL_PG_BIN": str(PG_BIN)}
        print(f"[with_postgres] PostgreSQL 15 cluster on 127.0.0.1:{port} ({root})", flush=True)
        return subprocess.run(argv, env=child_env).returncode
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
