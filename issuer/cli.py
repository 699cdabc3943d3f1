"""How the issuer's command groups are built (`python -m issuer keys|token|users|clients|db`).

Every group is a Flask `AppGroup` (its commands run in the app context, on the
same key ring and database as the server) whose commands log audit lines to
stderr, and whose errors an operator can act on are one line and a non-zero
exit (`operator_errors`), never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
from flask.cli import AppGroup

from issuer.accounts.claims import InvalidClaimError, parse_claims
from issuer.audit import log_to_stderr

P = ParamSpec("P")
R = TypeVar("R")


def command_group(name: str, help_text: str) -> AppGroup:
    """A group of operator commands: app context, audit lines on stderr."""
    return AppGroup(name, help=help_text, callback=log_to_stderr)


def operator_errors(
    *errors: type[Exception],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn `errors` into a one-line `Error: …` and exit status 1."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except errors as exc:
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorate


def _claims(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    try:
        return parse_claims(values)
    except InvalidClaimError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def claims_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`--claim NAME=VALUE`, repeatable, into a dict `claims` (a name given twice is
    an error); the same parser for every command that takes custom claims."""
    return click.option(
        "--claim",
        "claims",
        multiple=True,
        callback=_claims,
        metavar="NAME=VALUE",
        help=help_text,
    )
