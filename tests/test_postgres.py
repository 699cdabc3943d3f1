import shutil
import tempfile
from pathlib import Path

import psycopg

from stack import postgres


def test_embedded_server_answers_on_its_socket_only(pg_server: postgres.Server) -> None:
    with psycopg.connect(pg_server.url()) as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
        listen = conn.execute("show listen_addresses").fetchone()[0]
    assert int(version) >= 180000
    assert listen == ""


def test_running_reports_the_started_server(pg_server: postgres.Server) -> None:
    assert postgres.running(pg_server.data_dir) == pg_server


def test_a_stopped_server_starts_again_in_the_same_process() -> None:
    """Restarting PostgreSQL under a running process (what the resilience tests
    and a supervisor restart do) must start a server, not return a dead handle."""
    data = Path(tempfile.mkdtemp(prefix="neon-own-login-restart-")) / "data"
    try:
        first = postgres.start(data)
        assert postgres.stop(data)
        assert postgres.running(data) is None
        again = postgres.start(data)
        assert postgres.running(data) is not None
        with psycopg.connect(again.url(), connect_timeout=10) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert again.data_dir == first.data_dir
    finally:
        postgres.stop(data, mode="immediate")
        shutil.rmtree(data.parent, ignore_errors=True)
