"""Delivery backends for outgoing e-mail.

``ConsoleBackend`` is the development default: it writes each message to stdout
so a developer running the service sees what customers would receive.
``MemoryBackend`` keeps messages in a list for tests. ``SmtpBackend`` delivers.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    body: str
    sender: str = "orders@shop.example"


class EmailBackend(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class ConsoleBackend:
    """Prints every message to stdout instead of sending it."""

    def send(self, message: EmailMessage) -> None:
        print(f"To: {message.to}\nSubject: {message.subject}\n\n{message.body}")


class MemoryBackend:
    def __init__(self) -> None:
        self.outbox: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.outbox.append(message)

    def subjects(self) -> list[str]:
        return [message.subject for message in self.outbox]


class SmtpBackend:
    def __init__(self, host: str, port: int = 25, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        mime = MimeMessage()
        mime["From"] = message.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime.set_content(message.body)
        print(f"[smtp] connecting to {self.host}:{self.port}")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            client.send_message(mime)
        print(f"[smtp] delivered {message.subject!r}")


def backend_from_settings(kind: str, host: str = "localhost", port: int = 25) -> EmailBackend:
    if kind == "console":
        return ConsoleBackend()
    if kind == "memory":
        return MemoryBackend()
    if kind == "smtp":
        return SmtpBackend(host, port)
    raise ValueError(f"unknown e-mail backend {kind!r}")
