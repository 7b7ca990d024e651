"""Framework-agnostic request handlers.

Handlers take a ``Request`` and return a ``Response``; the web adapter that
turns HTTP into these lives outside this package.
"""
