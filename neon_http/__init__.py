"""A Python client for Neon's SQL-over-HTTP protocol (`POST /sql`), usable on its own.

It speaks to real Neon or to this project's local `proxy/` alike: the connection
string names the role and database, the user's JWT goes in `Authorization:
Bearer`, and Row-Level Security in the database decides what it sees::

    from neon_http import NeonHTTP

    db = NeonHTTP("postgresql://authenticated@ep-x.neon.tech/neondb", auth_token=jwt)
    db.query("select * from todos where user_id = auth.user_id()").rows
    db.transaction([("insert into todos (task) values ($1)", ["a"]), "select count(*) from todos"],
                   isolation="Serializable")

Like Neon's own driver, the endpoint is derived from the connection string's host
(`https://apiauth.<host minus its first label>/sql` with a token, `api.` without),
and can be overridden (`endpoint=` or `NEON_HTTP_ENDPOINT`, e.g. the local
`http://localhost:4444/sql`). One `urllib3.PoolManager` keeps connections alive. It
needs only `urllib3` (not `requests`: its sessions cost twice the CPU per query).
"""

from neon_http.client import ISOLATION_LEVELS, Isolation, NeonHTTP, Query, Result, derive_endpoint
from neon_http.errors import EndpointUnreachable, NeonDbError, NeonHTTPError

__all__ = [
    "ISOLATION_LEVELS",
    "EndpointUnreachable",
    "Isolation",
    "NeonDbError",
    "NeonHTTP",
    "NeonHTTPError",
    "Query",
    "Result",
    "derive_endpoint",
]
