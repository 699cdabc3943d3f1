"""Serving the proxy (`python -m proxy`): granian or gunicorn (`PROXY_SERVER`).

The session key is generated and installed once, by `python -m proxy` in the
process that becomes the server's master, before any worker is forked (a failure
is a clean CLI error, not a crashed arbiter). So every worker signs with the same key, a worker that gunicorn
restarts needs no database round trip to start, and exactly one key row exists
per running proxy; the master drops it when it exits.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask
from gunicorn.app.base import BaseApplication

import servicemetrics
from proxy import create_app
from proxy.config import ProxyConfig
from proxy.session import SessionKey
from serving import serve_wsgi

log = logging.getLogger(__name__)


class ProxyServer(BaseApplication):
    """Gunicorn running `create_app` with a session key already installed by the caller."""

    def __init__(
        self, config: ProxyConfig, options: dict[str, Any], session_key: SessionKey
    ) -> None:
        self.proxy_config = config
        self.options = options
        self.session_key = session_key
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
        # One metrics directory for every worker (see servicemetrics).
        self.cfg.set("on_starting", servicemetrics.on_starting)
        self.cfg.set("child_exit", servicemetrics.child_exit)
        self.cfg.set("post_worker_init", servicemetrics.post_worker_init)
        self.cfg.set("on_exit", self._exit)

    def _exit(self, server: Any) -> None:
        drop_session_key(self.proxy_config, self.session_key)
        servicemetrics.on_exit(server)

    def load(self) -> Flask:
        return create_app(self.proxy_config, self.session_key)


def drop_session_key(config: ProxyConfig, session_key: SessionKey) -> None:
    """When the server stops: its tokens stop verifying; a failure is only logged."""
    try:
        session_key.drop(config.admin_url)
    except psycopg.Error as error:
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
        # gunicorn's runtime control socket defaults to one path per OS user
        # (~/.gunicorn/gunicorn.ctl): every server of the stack would take it
        # over from the previous one. Nothing here uses it.
        "control_socket_disable": True,
        # Loopback peers may otherwise set SCRIPT_NAME and PATH_INFO by header
        # (`Script_Name:`), routing around a reverse proxy's path rules.
        "forwarder_headers": "",
    }


def serve_granian(config: ProxyConfig, session_key: SessionKey, *, access_log: bool) -> None:
    """granian with `config.workers` processes of `config.threads` blocking threads, each
    worker's app signing with `session_key`; the key is dropped when it stops."""
    try:
        serve_wsgi(
            lambda: create_app(config, session_key),
            config.host,
            config.port,
            workers=config.workers,
            threads=config.threads,
            access_log=access_log,
        )
    finally:
        drop_session_key(config, session_key)
