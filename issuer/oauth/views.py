"""The OAuth 2 / OpenID Connect HTTP endpoints, as one blueprint.

Each view checks its input (`params`), then hands the request to authlib's
AuthorizationServer; only the browser-facing decisions (log in first? ask for
consent? show or redirect an error?) are made here.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
)
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import SubmitField

from issuer import accounts, headers
from issuer.accounts.forms import PageForm
from issuer.oauth import params, prompts
from issuer.oauth.server import AuthorizationServer
from issuer.oauth.userinfo import user_info

bp = Blueprint("oauth", __name__)

#: Seconds a verifier may cache the discovery document.
DISCOVERY_MAX_AGE = 3600


class ConsentForm(PageForm):
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


class LogoutConfirmForm(PageForm):
    confirm = SubmitField("Log out")


@bp.after_request
def _page_headers(response: Response) -> Response:
    """Consent and logout pages must never be framed (clickjacking) or cached."""
    return headers.page_headers(response) if response.mimetype == "text/html" else response


def authorization_redirects(local_url: str) -> list[str]:
    """Where the authorization request at `local_url` may send the browser: its
    redirect URI, when that is registered for its client (`headers.Continuation`)."""
    parts = urlsplit(local_url)
    if parts.path != url_for("oauth.authorize"):
        return []
    query = parse_qs(parts.query)
    client_ids, redirect_uris = query.get("client_id", []), query.get("redirect_uri", [])
    if len(client_ids) != 1 or len(redirect_uris) != 1:
        return []
    client = _server().query_client(client_ids[0])
    if client is None or not client.check_redirect_uri(redirect_uris[0]):
        return []
    return redirect_uris


def _server() -> AuthorizationServer:
    return current_app.extensions["oauth"]


@bp.errorhandler(OAuth2Error)
def _oauth_error(error: OAuth2Error) -> Response:
    """Errors authlib raises outside its own try blocks (e.g. insecure transport)."""
    return _server().handle_error_response(None, error)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> Response:
    return _oauth_error(InvalidRequestError("The request body is too large.", status_code=413))


def _error_page(error: OAuth2Error) -> tuple[str, int]:
    """An error we must not redirect (unknown client, unregistered redirect URI)."""
    page = render_template(
        "oauth/error.html", error=error.error, description=error.get_error_description()
    )
    return page, error.status_code or 400


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int] | str:
    server = _server()
    try:
        params.check_query(request)
        params.check_params(request.form)
    except OAuth2Error as error:
        return _error_page(error)
    user = accounts.current_user()
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(None, error)
        return _error_page(error)
    try:
        authn = prompts.parse(grant.request.payload.data)
    except OAuth2Error as error:
        return _redirect_error(grant, error)
    if authn.needs_login(None if user is None else accounts.authenticated_at()):
        if authn.silent:
            return _redirect_error(grant, LoginRequiredError())
        authn.mark()
        return redirect(accounts.login_url(request.full_path))
    if current_app.config["ISSUER"].require_verified_email and not user.email_verified:
        # An app signs in only an owner who proved their address: one click on the
        # link we mail, then this very request goes on.
        if authn.silent:
            return _redirect_error(grant, InteractionRequiredError())
        return redirect(url_for("recovery.verification_needed", next=request.full_path))
    client = grant.client
    if client.first_party and "consent" not in authn.prompts:
        return _respond(server, grant, user, authn)
    headers.allow_form_targets(grant.redirect_uri)
    if authn.silent:
        return _redirect_error(grant, ConsentRequiredError())
    form = ConsentForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _error_page(InvalidRequestError("The consent form expired; please retry."))
        return _respond(server, grant, user if form.allow.data else None, authn)
    return render_template(
        "oauth/consent.html",
        client=client,
        scopes=(grant.request.scope or "").split(),
        resources=grant.request.resources,
        database_audience=current_app.config["ISSUER"].database_audience,
        user=user,
        form=form,
    )


def _respond(server: AuthorizationServer, grant, user, authn: prompts.AuthenticationRequest):
    """The code (or `access_denied`) for the client; the request is answered."""
    response = server.create_authorization_response(grant_user=user, grant=grant)
    authn.done()
    return response


def _redirect_error(grant, error: OAuth2Error) -> Response:
    """An error the client must hear about, at its (already checked) redirect URI."""
    error.redirect_uri = grant.redirect_uri
    error.state = grant.request.payload.state
    return _server().handle_error_response(None, error)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    with current_app.extensions["oauth_resource"].acquire("openid") as token:
        response = jsonify(user_info(token))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/end-session", methods=["GET", "POST"])
def logout() -> Response | tuple[str, int] | str:
    server = _server()
    try:
        params.check_query(request)
        if request.method == "POST" and request.mimetype != params.FORM_CONTENT_TYPE:
            # OpenID RP-Initiated Logout posts a form; JSON is no form data here.
            raise InvalidRequestError(f"The request body must be {params.FORM_CONTENT_TYPE}.")
        params.check_params(request.form)
        end_session = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return _error_page(error)
    user = accounts.current_user()
    if user is None and _cookies_withheld():
        # Posted from the client's site: browsers withhold SameSite=Lax cookies from
        # cross-site POSTs, so this request cannot see the login. One click on our own
        # origin brings them. Nothing here may write the session: a Set-Cookie now
        # would replace the very login this request cannot see.
        headers.allow_form_targets(end_session.redirect_uri)
        return render_template("oauth/logout_continue.html", carried=_carried())
    hinted = end_session.id_token_claims
    if user is not None and (hinted is None or hinted.get("sub") != user.id):
        # Anyone can link or post here: without a hint naming this very user, a
        # page elsewhere could log them out. Ask them, with a CSRF-protected form
        # that carries the request on (in the body: an ID token is no URL part).
        form = LogoutConfirmForm()
        headers.allow_form_targets(end_session.redirect_uri)
        if not (form.is_submitted() and form.confirm.name in request.form):
            return render_template("oauth/logout_confirm.html", form=form, carried=_carried())
        if not form.validate():
            return _error_page(InvalidRequestError("The logout form expired; please retry."))
    # Logged in and confirmed, or named by the hint; or nobody is logged in here,
    # and there is nothing to end (the session is left untouched).
    response = server.create_endpoint_response("end_session", end_session)
    return response or render_template("oauth/logged_out.html")


#: Marks the same-origin repost of a cross-site logout (`logout_continue.html`).
_CONTINUED = "continued"


def _cookies_withheld() -> bool:
    """A cross-site form post that brought no issuer cookie (not yet reposted by us)."""
    return (
        request.method == "POST"
        and _CONTINUED not in request.form
        and current_app.config["SESSION_COOKIE_NAME"] not in request.cookies
    )


def _carried() -> dict[str, str]:
    """The logout request's parameters, to post on from a page of ours."""
    return {k: v for k, v in request.values.items() if k not in ("csrf_token", _CONTINUED)}


@bp.route("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    response = Response(current_app.extensions["oauth_discovery"], mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
