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
