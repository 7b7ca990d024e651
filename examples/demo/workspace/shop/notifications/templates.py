"""E-mail templates, rendered with ``string.Template``.

Each template is a (subject, body) pair. Missing placeholders raise KeyError at
render time, which the tests rely on to catch typos.
"""

from __future__ import annotations

from string import Template

TEMPLATES: dict[str, tuple[str, str]] = {
    "welcome": (
        "Welcome to the shop, $name",
        "Hi $name,\n\nyour account is ready. Happy shopping!\n",
    ),
    "order_confirmed": (
        "Order $order_id confirmed",
        "Hi $name,\n\nwe received your order $order_id ($items) for $amount.\n",
    ),
    "invoice_issued": (
        "Invoice $invoice_id",
        "Hi $name,\n\ninvoice $invoice_id over $amount is due on $due_date.\n",
    ),
    "payment_received": (
        "Payment received for $invoice_id",
        "Hi $name,\n\nthank you, we received $amount for invoice $invoice_id.\n",
    ),
    "payment_failed": (
        "Payment for $invoice_id failed",
        "Hi $name,\n\nyour payment for invoice $invoice_id failed: $reason.\n",
    ),
}


def render(template: str, **context: object) -> tuple[str, str]:
    """Returns the rendered (subject, body) of ``template``."""
    try:
        subject, body = TEMPLATES[template]
    except KeyError:
        raise KeyError(f"unknown e-mail template {template!r}") from None
    values = {key: str(value) for key, value in context.items()}
    return Template(subject).substitute(values), Template(body).substitute(values)
