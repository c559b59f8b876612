"""Authorization: API keys for server-side callers, signed tokens with grants for end users.

Deny by default. ``policy.py`` says who is calling; ``http.py`` and
``websocket.py`` apply it to requests and handshakes; ``grants.py`` says what
a token allows; ``keys.py`` and ``tokens.py`` check the credentials. The
package has no import-time dependencies on the rest of the service beyond
its settings, which import ``keys.py`` to validate the configured keys.
"""
