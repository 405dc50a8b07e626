"""Signals core sends to higher apps (STYLE.md: a lower app never imports a higher one)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by each web process once its event loop runs, with `listeners`: an object with
# `ports() -> set[int]`, `open(port) -> bool` and `close(port)` for extra HTTPS ports that serve
# the same application. Receivers may start tasks on the running loop.
web_serving = Signal()
