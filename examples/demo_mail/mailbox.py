"""The mail store: one mailbox per user, seeded with a few messages; list, read and reply.

Message ids are unique across all mailboxes, so asking for another user's message id is
simply "no such message" in your own mailbox.

Statuses: ``open`` (received, not answered yet), ``answered`` (received, and the user has
replied in its thread), ``archived`` (received, filed away), ``sent`` (written by the user).
"""

from __future__ import annotations

from typing import Any

import msgspec

DOMAIN = "demo-mail.test"


class Message(msgspec.Struct, rename={"sender": "from"}):
    id: str
    thread_id: str
    sender: str
    to: str
    subject: str
    body: str
    status: str

    def summary(self) -> dict[str, Any]:
        """What ``list_messages`` shows: everything but ``to`` and ``body``."""
        return {
            "id": self.id, "thread_id": self.thread_id, "from": self.sender,
            "subject": self.subject, "status": self.status,
        }

    def full(self) -> dict[str, Any]:
        """What ``read_message`` shows."""
        return {**self.summary(), "body": self.body}


class Mailbox(msgspec.Struct):
    owner: str
    address: str
    messages: list[Message] = []
    """Oldest first; listings show the newest first."""
    next_number: int = 1

    def newest(self, limit: int) -> list[Message]:
        return list(reversed(self.messages))[:limit]

    def get(self, message_id: str) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def thread(self, thread_id: str) -> list[Message]:
        return [m for m in self.messages if m.thread_id == thread_id]

    def add(self, *, thread_id: str | None, sender: str, to: str, subject: str, body: str, status: str) -> Message:
        number = self.next_number
        self.next_number += 1
        message = Message(
            id=f"msg_{self.owner}_{number}", thread_id=thread_id or f"thr_{self.owner}_{number}",
            sender=sender, to=to, subject=subject, body=body, status=status,
        )
        self.messages.append(message)
        return message

    def reply(self, thread_id: str, body: str) -> Message | None:
        """Append the user's reply to ``thread_id``; ``None`` if the thread is not in this mailbox.

        Received messages of the thread that were ``open`` become ``answered``.
        """
        thread = self.thread(thread_id)
        if not thread:
            return None
        first = thread[0]
        subject = first.subject if first.subject.lower().startswith("re:") else f"Re: {first.subject}"
        received = [m for m in thread if m.status != "sent"]
        to = received[-1].sender if received else first.to
        for message in received:
            if message.status == "open":
                message.status = "answered"
        return self.add(thread_id=thread_id, sender=self.address, to=to, subject=subject, body=body, status="sent")


def _seed_alice() -> Mailbox:
    box = Mailbox(owner="alice", address=f"Alice Example <alice@{DOMAIN}>")
    box.add(
        thread_id=None, sender="IT Helpdesk <helpdesk@example.com>", to=box.address,
        subject="Scheduled maintenance on Saturday",
        body="Hi all,\n\nEmail will be unavailable on Saturday from 06:00 to 07:00 UTC.\n\nIT Helpdesk",
        status="archived",
    )
    box.add(
        thread_id=None, sender="Priya Shah <priya@example.com>", to=box.address,
        subject="Lunch next week?",
        body="Hi Alice,\n\nAre you free for lunch on Tuesday or Wednesday?\n\nPriya",
        status="open",
    )
    box.add(
        thread_id=None, sender="Nate Brooks <nate@example.com>", to=box.address,
        subject="Quarterly numbers",
        body=(
            "Hi Alice,\n\nCould you send me the quarterly numbers before Thursday's review?"
            " A short summary is fine.\n\nThanks,\nNate"
        ),
        status="open",
    )
    return box


def _seed_bob() -> Mailbox:
    box = Mailbox(owner="bob", address=f"Bob Example <bob@{DOMAIN}>")
    box.add(
        thread_id=None, sender="Carol Diaz <carol@example.com>", to=box.address,
        subject="Contract renewal (confidential)",
        body="Bob,\n\nThe renewal price is 20% lower than last year. Please keep this to yourself.\n\nCarol",
        status="open",
    )
    box.add(
        thread_id=None, sender="Nate Brooks <nate@example.com>", to=box.address,
        subject="Team offsite",
        body="Hi Bob,\n\nThe offsite is confirmed for the 14th.\n\nNate",
        status="open",
    )
    return box


def seed_mailboxes(users: list[str] | None = None) -> dict[str, Mailbox]:
    """Fresh mailboxes: alice's and bob's seeded messages, empty ones for any other user."""
    seeded = {"alice": _seed_alice(), "bob": _seed_bob()}
    names = users if users is not None else list(seeded)
    return {name: seeded.get(name) or Mailbox(owner=name, address=f"{name} <{name}@{DOMAIN}>") for name in names}
