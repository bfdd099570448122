"""The embedded OAuth 2.1 issuer, served under ``/idp``; start at ``executor.idp.issuer``."""
