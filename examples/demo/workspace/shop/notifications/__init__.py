"""Customer e-mails: templates, delivery backends and the notifier facade."""

from shop.notifications.backends import ConsoleBackend, EmailMessage, MemoryBackend, SmtpBackend
from shop.notifications.notifier import Notifier

__all__ = ["ConsoleBackend", "EmailMessage", "MemoryBackend", "Notifier", "SmtpBackend"]
