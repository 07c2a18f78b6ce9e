"""The CSC facade: the Cloud Signature Consortium API v2 over this server's HSM keys.

``kyso.csc.http`` is the HTTP/JSON screen (Starlette), ``kyso.csc.serve`` runs it (uvicorn);
the decisions are in ``kyso.operations.csc``. Needs the ``csc`` extra (Starlette, uvicorn).
"""
