import pytest

from shop.notifications.backends import ConsoleBackend, EmailMessage, backend_from_settings
from shop.notifications.templates import render


def test_console_backend_writes_the_message_to_stdout(capsys):
    ConsoleBackend().send(EmailMessage("a@example.com", "Hello", "Body text\n"))
    out = capsys.readouterr().out
    assert out.startswith("To: a@example.com\nSubject: Hello\n\nBody text")


def test_welcome_mail_is_sent_on_registration(app, outbox):
    app.accounts.register("dana@example.com", "Dana", "correct horse battery")
    [message] = outbox.outbox
    assert message.to == "dana@example.com"
    assert message.subject == "Welcome to the shop, Dana"


def test_inactive_accounts_get_no_mail(app, alice, outbox):
    app.accounts.deactivate(alice.id)
    sent = len(outbox.outbox)
    app.orders._notifier.welcome(app.accounts.get(alice.id))
    assert len(outbox.outbox) == sent


def test_failing_backend_does_not_fail_the_operation(app, outbox, monkeypatch):
    def broken(message):
        raise OSError("smtp down")

    monkeypatch.setattr(outbox, "send", broken)
    user = app.accounts.register("erin@example.com", "Erin", "correct horse battery")
    assert user.is_active


def test_templates_require_every_placeholder():
    subject, body = render("payment_failed", name="Al", invoice_id="inv_1", reason="expired card")
    assert subject == "Payment for inv_1 failed"
    assert "expired card" in body
    with pytest.raises(KeyError):
        render("payment_failed", name="Al")


def test_unknown_backend_kind_is_an_error():
    assert isinstance(backend_from_settings("console"), ConsoleBackend)
    with pytest.raises(ValueError):
        backend_from_settings("carrier-pigeon")
