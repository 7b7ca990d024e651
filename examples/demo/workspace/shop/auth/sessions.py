"""Server-side sessions for the web front end.

A session id is an opaque random string mapped to an account and a last-seen
time. Sessions expire after ``idle_seconds`` without use.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from shop.ids import UserId
from shop.utils.clock import Clock, SystemClock


@dataclass
class Session:
    user_id: UserId
    created_at: datetime
    last_seen: datetime


class SessionStore:
    def __init__(self, idle_seconds: int = 1800, clock: Clock | None = None) -> None:
        self._sessions: dict[str, Session] = {}
        self._idle = timedelta(seconds=idle_seconds)
        self._clock = clock or SystemClock()

    def create(self, user_id: UserId) -> str:
        session_id = secrets.token_urlsafe(32)
        now = self._clock.now()
        self._sessions[session_id] = Session(user_id, now, now)
        print(f"[sessions] new session for {user_id}")
        return session_id

    def resolve(self, session_id: str) -> UserId | None:
        """The account behind ``session_id``, refreshing its idle timer."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock.now()
        if now - session.last_seen > self._idle:
            del self._sessions[session_id]
            print(f"[sessions] session for {session.user_id} expired")
            return None
        session.last_seen = now
        return session.user_id

    def revoke(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    def revoke_all(self, user_id: UserId) -> int:
        """Logs ``user_id`` out everywhere; returns how many sessions ended."""
        doomed = [sid for sid, s in self._sessions.items() if s.user_id == user_id]
        for session_id in doomed:
            del self._sessions[session_id]
        print(f"[sessions] revoked {len(doomed)} sessions for {user_id}")
        return len(doomed)

    def active_count(self) -> int:
        return len(self._sessions)
