"""The todo pages: list, add, mark done / not done, edit, delete, and what
the database itself sees. Every handler is request → validation → `Todos`."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from app import neon
from app.auth import fresh_login, login_required, login_token
from app.todos import InvalidTask, Todo, Todos, clean_task

bp = Blueprint("todos", __name__)


def _todos() -> Todos:
    return neon.todos(g.login.access_token)


def _found(todo: Todo | None) -> Todo:
    if todo is None:
        abort(404, "That todo does not exist, or it is not yours.")
    return todo


def _back_to_list() -> ResponseReturnValue:
    return redirect(url_for("todos.index"), code=303)


@bp.get("/")
def index() -> ResponseReturnValue:
    if login_token() is None:
        return render_template("welcome.html")
    fresh_login()  # a login ended server-side says so, rather than looking logged out
    return _list_page()


def _list_page(error: str | None = None, draft: str = "") -> ResponseReturnValue:
    page = render_template("todos.html", todos=_todos().list(), error=error, draft=draft)
    return page, 400 if error else 200


@bp.post("/todos")
@login_required
def add() -> ResponseReturnValue:
    raw = request.form.get("task", "")
    try:
        task = clean_task(raw)
    except InvalidTask as error:
        return _list_page(error=str(error), draft=raw)
    _todos().add(task)
    return _back_to_list()


@bp.post("/todos/<int:todo_id>/toggle")
@login_required
def toggle(todo_id: int) -> ResponseReturnValue:
    done = request.form.get("done")
    if done is None:
        _found(_todos().flip(todo_id))
    elif done in ("true", "false"):
        _found(_todos().set_complete(todo_id, done == "true"))
    else:
        abort(400, "`done` must be true or false.")
    return _back_to_list()


@bp.route("/todos/<int:todo_id>/edit", methods=["GET", "POST"])
@login_required
def edit(todo_id: int) -> ResponseReturnValue:
    todos = _todos()
    if request.method == "GET":
        todo = _found(todos.get(todo_id))
        return render_template("edit.html", todo=todo, draft=todo.task, error=None)
    raw = request.form.get("task", "")
    try:
        task = clean_task(raw)
    except InvalidTask as error:
        todo = _found(todos.get(todo_id))
        return render_template("edit.html", todo=todo, draft=raw, error=str(error)), 400
    _found(todos.rename(todo_id, task))
    flash("Todo updated.", "success")
    return _back_to_list()


@bp.post("/todos/<int:todo_id>/delete")
@login_required
def delete(todo_id: int) -> ResponseReturnValue:
    if not _todos().delete(todo_id):
        abort(404, "That todo does not exist, or it is not yours.")
    flash("Todo deleted.", "success")
    return _back_to_list()


@bp.get("/session")
@login_required
def session_page() -> ResponseReturnValue:
    seen = neon.database_view(g.login.access_token)
    data_api = current_app.config["APP"].database_api == "data_api"
    return render_template("session.html", seen=seen, data_api=data_api)
