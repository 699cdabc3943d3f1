"""The issuer's mail over real SMTP: plain to a loopback relay, STARTTLS and TLS with
credentials and certificate checks, refusals that name the setting; and the local
outbox page, which only a loopback issuer shows to loopback visitors."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import mailbox
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from envsettings import SettingError
from issuer import create_app
from issuer.config import Config
from issuer.keys import KeyRing
from issuer.mail import Mailer, MailError, SmtpServer
from stack.mailbox import MailServer, _free_port
from tests.support.mail import Inbox, html_of, text_of

USER, PASSWORD = "issuer", "smtp password with spaces & symbols"

# The implicit-TLS relay: aiosmtpd warns about AUTH without STARTTLS, not knowing the
# connection is TLS from the first byte.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def _certificate(subject: str, issuer_key, issuer_name, key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclasses.dataclass
class Tls:
    ca_file: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A private CA and a certificate for localhost / 127.0.0.1 signed by it."""
    base = tmp_path_factory.mktemp("tls")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mail CA")])
    ca = _certificate("test mail CA", ca_key, ca_name, ca_key, ca=True)
    cert = _certificate("localhost", ca_key, ca_name, key, ca=False)
    (base / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (base / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (base / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(base / "cert.pem", base / "key.pem")
    return Tls(base / "ca.pem", server)


def _authenticate(_server, _session, _envelope, mechanism, data) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def secure_server(
    tls: Tls, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Inbox]]:
    """A relay that requires STARTTLS (or speaks TLS at once) and a login."""
    maildir = tmp_path / "secure-mail"
    mailbox.Maildir(maildir, create=True)
    port = _free_port("127.0.0.1")
    implicit = request.param == "smtps"
    controller = Controller(
        Mailbox(maildir),
        hostname="127.0.0.1",
        port=port,
        ssl_context=tls.server if implicit else None,
        server_hostname="localhost",
        tls_context=None if implicit else tls.server,
        require_starttls=not implicit,
        authenticator=_authenticate,
        auth_required=True,
        # aiosmtpd cannot tell that an implicit-TLS connection is encrypted.
        auth_require_tls=not implicit,
    )
    controller.start()
    scheme = "smtps" if implicit else "smtp+starttls"
    yield (
        f"{scheme}://{USER}:{PASSWORD.replace(' ', '%20').replace('&', '%26')}@localhost:{port}",
        Inbox(maildir),
    )
    controller.stop()


def send(mailer: Mailer) -> None:
    mailer.send(
        "alice@example.com", "Confirm your email", "Open https://x.example/a", "<p>Open</p>"
    )


def test_a_message_goes_out_as_text_and_html_over_smtp(
    mail_server: MailServer, inbox: Inbox
) -> None:
    mailer = Mailer(SmtpServer.from_url(mail_server.url), "Own login <no-reply@login.example>")
    before = inbox.count("text-and-html@example.com")
    mailer.send("text-and-html@example.com", "Subject here", "plain body\n", "<p>html body</p>")
    message = inbox.latest("text-and-html@example.com", after=before)
    assert message["From"] == "Own login <no-reply@login.example>"
    assert message["Subject"] == "Subject here"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@login.example>")
    assert text_of(message) == "plain body\n"
    assert "<p>html body</p>" in html_of(message)


@pytest.mark.parametrize("secure_server", ["starttls", "smtps"], indirect=True)
def test_starttls_and_tls_with_credentials_and_a_verified_certificate(
    secure_server: tuple[str, Inbox], tls: Tls
) -> None:
    url, box = secure_server
    send(Mailer(SmtpServer.from_url(url), "no-reply@login.example", tls.ca_file))
    assert box.latest("alice@example.com")["Subject"] == "Confirm your email"


@pytest.mark.parametrize("secure_server", ["starttls", "smtps"], indirect=True)
def test_an_unknown_certificate_or_wrong_password_is_a_mail_error(
    secure_server: tuple[str, Inbox], tls: Tls
) -> None:
    url, box = secure_server
    with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
        send(Mailer(SmtpServer.from_url(url), "no-reply@login.example"))  # system CAs only
    wrong = url.replace("%20with%20", "%20without%20")
    with pytest.raises(MailError, match=r"535|uthentication"):
        send(Mailer(SmtpServer.from_url(wrong), "no-reply@login.example", tls.ca_file))
    assert box.messages() == []


def test_a_server_that_is_down_is_a_mail_error() -> None:
    url = f"smtp://127.0.0.1:{_free_port('127.0.0.1')}"
    with pytest.raises(MailError, match=r"cannot send mail through 127\.0\.0\.1"):
        send(Mailer(SmtpServer.from_url(url), "no-reply@login.example", timeout=2))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example", "must be smtp://, smtp+starttls:// or smtps://"),
        ("smtp://", "with a host"),
        ("smtp://mail.example:99999", "invalid port"),
        ("smtp://user:pw@mail.example", "sends credentials in clear"),
    ],
)
def test_smtp_urls_that_cannot_work_are_refused_at_start(
    issuer_config: Config, url: str, message: str
) -> None:
    with pytest.raises(SettingError, match=re.escape(message)):
        dataclasses.replace(issuer_config, smtp_url=url).check()


def test_defaults_and_environment(tmp_path: Path) -> None:
    assert SmtpServer.from_url("smtp://127.0.0.1:8025") == SmtpServer("127.0.0.1", 8025, "plain")
    assert SmtpServer.from_url("smtp://user:pw@localhost").port == 25  # loopback: allowed
    assert SmtpServer.from_url("smtp+starttls://u:p%40ss@mail.example").password == "p@ss"
    assert SmtpServer.from_url("smtps://mail.example").port == 465
    config = Config.from_env(
        {"ISSUER_SMTP_URL": "smtps://mail.example", "ISSUER_MAIL_FROM": "login@example.com",
         "ISSUER_OUTBOX_DIR": str(tmp_path)}
    )  # fmt: skip
    assert (config.smtp_url, config.mail_from, config.outbox_dir) == (
        "smtps://mail.example", "login@example.com", tmp_path,
    )  # fmt: skip
    with pytest.raises(SettingError, match="ISSUER_MAIL_FROM must be an email address"):
        dataclasses.replace(config, mail_from="nobody").check()
    with pytest.raises(SettingError, match="ISSUER_SMTP_CA_FILE"):
        dataclasses.replace(config, smtp_ca_file=tmp_path / "missing.pem").check()


# -- the outbox page --------------------------------------------------------------


def _outbox_app(issuer_config: Config, mail_server: MailServer, **changes: object):
    KeyRing(issuer_config.keys_dir).init()
    app = create_app(dataclasses.replace(issuer_config, outbox_dir=mail_server.maildir, **changes))
    app.config["TESTING"] = True
    return app


def test_the_outbox_shows_the_mail_with_its_links(
    issuer_config: Config, mail_server: MailServer
) -> None:
    app = _outbox_app(issuer_config, mail_server)
    Mailer(SmtpServer.from_url(mail_server.url), "no-reply@login.example").send(
        "outbox@example.com", "Reset <your> password",
        "Open http://127.0.0.1:8001/reset?token=abc&x=<b> within 30 minutes.\n", "<p>x</p>",
    )  # fmt: skip
    page = app.test_client().get("/outbox", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Reset &lt;your&gt; password" in html
    assert '<a href="http://127.0.0.1:8001/reset?token=abc&amp;x=">' in html
    assert "&lt;b&gt; within 30 minutes" in html
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("changes", "remote"),
    [
        ({}, "192.0.2.7"),  # a visitor from elsewhere
        ({"issuer_url": "https://login.example.com"}, "127.0.0.1"),  # behind a local proxy
    ],
)
def test_the_outbox_is_not_there_for_others(
    issuer_config: Config, mail_server: MailServer, changes: dict, remote: str
) -> None:
    app = _outbox_app(issuer_config, mail_server, **changes)
    assert app.test_client().get("/outbox", environ_base={"REMOTE_ADDR": remote}).status_code == 404


def test_without_an_outbox_dir_there_is_no_outbox(issuer_config: Config) -> None:
    KeyRing(issuer_config.keys_dir).init()
    app = create_app(issuer_config)
    assert app.test_client().get("/outbox").status_code == 404
