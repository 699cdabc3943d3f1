"""Neon's Data API, served locally: PostgREST's HTTP interface at `/<db>/rest/v1/…`.

`query` parses PostgREST's URL language, `catalog` reads what the exposed schema
holds, `compile` turns a request into one parameterised statement, `endpoint`
authenticates, switches roles and answers in PostgREST's shapes.
"""

from proxy.data_api.endpoint import init_app

__all__ = ["init_app"]
