"""Emails through a real SMTP server process on loopback (aiosmtpd, `python -m aiosmtpd`, writing
what it receives to a maildir): what arrives, that no email carries the child's data, and that a send
that fails while the server is down is retried and delivered once it is back; dead letters are kept
and replayed."""

from __future__ import annotations

import mailbox
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from childindex import mail, people_notify
from directory.models import Child, ChildAddress, ChildIdentifier, ChildName, utcnow
from directory.models.notifications import EmailOutbox, Notice
from tests.notices.scene import World, build, open_caf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """aiosmtpd in its own process, storing each message in a maildir."""

    def __init__(self, folder: Path, extra: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.folder = folder
        self.extra = extra  # e.g. the certificate and key for STARTTLS or implicit TLS
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.port}",
                *self.extra,
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the SMTP server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def messages(self) -> list[mailbox.MaildirMessage]:
        return list(mailbox.Maildir(self.folder, create=False)) if (self.folder / "new").exists() else []


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "maildir")
    server.start()
    yield server
    server.stop()


def _smtp(server: SmtpServer) -> mail.Smtp:
    return mail.Smtp(
        host="127.0.0.1",
        port=server.port,
        tls="none",
        sender="index@council.test",
        base_url="https://childindex.example",
        timeout=3,
    )


def _child_data(engine: Engine, w: World) -> list[str]:
    with Session(engine) as s:
        child = s.get(Child, w.child)
        assert child is not None and child.date_of_birth is not None
        names = [
            n
            for row in s.exec(select(ChildName).where(ChildName.child_id == w.child)).all()
            for n in (row.given, row.family)
            if n
        ]
        numbers = [
            i.value for i in s.exec(select(ChildIdentifier).where(ChildIdentifier.child_id == w.child)).all()
        ]
        postcodes = [
            a.postcode for a in s.exec(select(ChildAddress).where(ChildAddress.child_id == w.child)).all()
        ]
    dob = child.date_of_birth
    data = [*names, *numbers, *[p for p in postcodes if p], str(child.id), child.id.hex]
    data += [dob.isoformat(), dob.strftime("%d/%m/%Y"), dob.strftime("%-d %B %Y")]
    data += [p.split()[0] for p in postcodes if p]  # the outward code too
    assert len(names) >= 2 and numbers and postcodes
    return data


def test_emails_arrive_with_a_link_and_no_child_data(engine: Engine, smtp_server: SmtpServer) -> None:
    w = build(engine)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=True)
    sent = mail.send_due(engine, _smtp(smtp_server))
    with Session(engine) as s:
        rows = s.exec(select(EmailOutbox)).all()
        notices = {n.id: n for n in s.exec(select(Notice)).all()}
    assert sent.sent == len(rows) > 0 and {r.status for r in rows} == {"sent"}
    got = smtp_server.messages()
    assert len(got) == len(rows)
    forbidden = _child_data(engine, w)
    recipients = set()
    for msg in got:
        payload = msg.get_payload(decode=True)
        assert isinstance(payload, bytes)
        body = payload.decode()
        whole = msg.as_string()
        recipients.add(msg["To"])
        assert msg["Subject"] == mail.SUBJECT and msg["From"] == "index@council.test"
        assert "https://childindex.example/inbox/" in body
        notice_id = body.split("/inbox/")[1].split()[0]
        assert any(str(n) == notice_id for n in notices)
        for item in forbidden:
            assert item not in whole, f"an email carries the child's data ({item!r})"
    assert "lina@council.test" in recipients and "sam@school.test" not in recipients  # Sam acted
    assert mail.send_due(engine, _smtp(smtp_server)).sent == 0  # nothing twice


def test_a_send_that_fails_is_retried_and_delivered_when_the_server_is_back(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    w = build(engine)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=True)
    smtp_server.stop()
    now = utcnow()
    failed = mail.send_due(engine, _smtp(smtp_server), now=now, backoff_seconds=30)
    assert failed.sent == 0 and failed.retried > 0
    with Session(engine) as s:
        rows = s.exec(select(EmailOutbox)).all()
    assert {r.status for r in rows} == {"pending"} and all(r.attempts == 1 and r.last_error for r in rows)
    assert all(r.next_attempt_at > now for r in rows)  # backed off: not before its time
    smtp_server.start()
    assert mail.send_due(engine, _smtp(smtp_server), now=now).sent == 0  # not due yet
    later = now + timedelta(minutes=15)
    assert mail.send_due(engine, _smtp(smtp_server), now=later).sent == len(rows)
    assert len(smtp_server.messages()) == len(rows)


def test_after_every_attempt_an_email_is_kept_dead_and_replayed(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    w = build(engine)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=True)
    smtp_server.stop()
    now = utcnow()
    for i in range(3):
        mail.send_due(engine, _smtp(smtp_server), now=now + timedelta(hours=i), max_attempts=3)
    dead = mail.dead_letters(engine)
    assert dead and all(r.attempts == 3 for r in dead)
    smtp_server.start()
    assert mail.send_due(engine, _smtp(smtp_server), now=now + timedelta(hours=5)).sent == 0
    assert mail.replay(engine) == len(dead)
    assert mail.send_due(engine, _smtp(smtp_server)).sent == len(dead)
    assert len(smtp_server.messages()) == len(dead)


def test_the_worker_round_fans_out_and_sends(engine: Engine, smtp_server: SmtpServer) -> None:
    w = build(engine)
    worker = people_notify.PeopleNotifier(engine, smtp=_smtp(smtp_server), reminder_interval_seconds=3600)
    worker.run_once()
    open_caf(engine, w)
    done = worker.run_once()
    assert done.sent > 0 and len(smtp_server.messages()) == done.sent


def test_an_email_whose_notice_was_purged_is_dropped_not_sent(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    w = build(engine)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=True)
    with engine.begin() as conn:  # as a purge does (lifecycle.PURGED_ROWS): the notices go
        conn.exec_driver_sql("DELETE FROM notice")
    assert mail.send_due(engine, _smtp(smtp_server)).sent == 0
    with Session(engine) as s:
        assert {r.status for r in s.exec(select(EmailOutbox)).all()} == {"dropped"}
    assert smtp_server.messages() == []


def test_serve_runs_the_notifier_as_the_settings_say(engine: Engine) -> None:
    from childindex.settings import Settings

    off = people_notify.from_settings(Settings(database_url="sqlite://"), engine)
    assert off.smtp is None and off.still_involved_days == 180
    on = people_notify.from_settings(
        Settings(
            database_url="sqlite://",
            smtp_host="mail.example",
            smtp_port=465,
            smtp_tls="tls",
            smtp_sender="index@council.test",
            issuer="https://index.example",
            still_involved_days=90,
        ),
        engine,
    )
    assert on.smtp == mail.Smtp(
        host="mail.example",
        port=465,
        tls="tls",
        sender="index@council.test",
        base_url="https://index.example",
    )
    assert on.still_involved_days == 90


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("tls", ["starttls", "tls"])
def test_tls_is_verified_and_used(engine: Engine, tmp_path: Path, tls: str) -> None:
    cert, key = _certificate(tmp_path)
    flags = (
        ("--tlscert", str(cert), "--tlskey", str(key))
        if tls == "starttls"
        else ("--smtpscert", str(cert), "--smtpskey", str(key))
    )
    server = SmtpServer(tmp_path / "maildir", flags)
    server.start()
    try:
        w = build(engine)
        open_caf(engine, w)
        people_notify.fan_out(engine, email=True)
        plain = mail.Smtp(host="127.0.0.1", port=server.port, tls=tls, timeout=3)
        untrusted = mail.send_due(engine, plain)  # the system's CAs do not know this one
        assert untrusted.sent == 0 and untrusted.retried > 0
        with Session(engine) as s:
            assert all(
                "CERTIFICATE_VERIFY_FAILED" in (r.last_error or "") for r in s.exec(select(EmailOutbox)).all()
            )
        trusted = mail.Smtp(host="127.0.0.1", port=server.port, tls=tls, timeout=3, ca_file=str(cert))
        done = mail.send_due(engine, trusted, now=utcnow() + timedelta(hours=1))
        assert done.sent == untrusted.retried and len(server.messages()) == done.sent
    finally:
        server.stop()


def test_the_emails_command_lists_and_replays_dead_letters(
    engine: Engine, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from childindex.cli import app as cli

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    w = build(engine)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=True)
    smtp_server.stop()
    mail.send_due(engine, _smtp(smtp_server), max_attempts=1)
    dead = mail.dead_letters(engine)
    runner = CliRunner()
    listed = runner.invoke(cli, ["emails", "dead"])
    assert listed.exit_code == 0 and f"{len(dead)} dead-lettered" in listed.output, listed.output
    assert "ConnectionRefusedError" in listed.output
    assert runner.invoke(cli, ["emails", "retry", str(dead[0].id)]).exit_code == 0
    assert runner.invoke(cli, ["emails", "retry", str(dead[0].id)]).exit_code == 1  # no longer dead
    rest = runner.invoke(cli, ["emails", "retry", "--all"])
    assert rest.exit_code == 0 and f"{len(dead) - 1} queued again" in rest.output
    smtp_server.start()
    assert mail.send_due(engine, _smtp(smtp_server)).sent == len(dead)
