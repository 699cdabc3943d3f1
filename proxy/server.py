"""Serving the proxy with gunicorn (`python -m proxy`).

The session key is generated and installed once, in the gunicorn master before
it forks, so every worker signs with the same key, a worker that gunicorn
restarts needs no database round trip to start, and exactly one key row exists
per running proxy; the master drops it when it exits.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from proxy import create_app
from proxy.config import ProxyConfig
from proxy.session import SessionKey

log = logging.getLogger(__name__)


class ProxyServer(BaseApplication):
    def __init__(self, config: ProxyConfig, options: dict[str, Any]) -> None:
        self.proxy_config = config
        self.options = options
        self.session_key: SessionKey | None = None
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
        self.cfg.set("on_starting", self._install_key)
        self.cfg.set("on_exit", self._drop_key)

    def load(self) -> Flask:
        return create_app(self.proxy_config, self.session_key)

    def _install_key(self, _server: Any) -> None:
        self.session_key = SessionKey.generate()
        self.session_key.install(self.proxy_config.admin_url)

    def _drop_key(self, _server: Any) -> None:
        if self.session_key is not None:
            try:
                self.session_key.drop(self.proxy_config.admin_url)
            except Exception as error:
                log.warning("could not drop the session key: %s", error)


def gunicorn_options(
    bind: str, workers: int, threads: int, *, access_log: bool = False
) -> dict[str, Any]:
    """The server configuration chosen by measurement (see bench/proxy.py).

    psycopg is blocking, so requests need threads; `gthread` workers with one
    psycopg pool per (role, database) per worker, keep-alive for clients that
    reuse connections (the todo app, drivers), and no preloading, so that pools
    and threads are only ever created after the fork.
    """
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": 30,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": False,
    }
