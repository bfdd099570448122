"""What ``interlock demo`` runs: stand-ins for third-party services, speaking the real protocols.

``examples.demo_mail`` is a Gmail-like provider: an OAuth 2.1 authorization server and an
MCP server over one mailbox per user, in one process (``python -m examples.demo_mail``).
"""
