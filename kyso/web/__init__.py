"""The console (``kyso web``) of auditors and operators: a separate process, a client of
kyso's gRPC API (and, for the operator page, of its metrics endpoint).

For auditors it verifies PDFs (a plain-language summary, details, revisions, the diagnostic
JSON, a report sealed by kyso), shows a document's history from the ledger with each event's
inclusion proof checked here against the latest signed tree head, checks the ledger's
consistency against an older head, and hands out an evidence bundle that
``kyso evidence verify`` checks offline. For operators (signed in separately, at
``/van-hanh/dang-nhap``) it shows ``/van-hanh``: the view of ``kyso admin status``, built by
``kyso.operator_view`` from the health answer and the metrics.

Layout: ``settings`` (its TOML file), ``client`` (the gRPC calls, with its own identity and the
auditor role), ``checks`` (proofs and heads checked on this side), ``summary`` (a report in
words), ``evidence`` (the bundle: built and verified offline; no web imports, so the CLI can use
it without the web extra), ``report_pdf`` (the report as a PDF to seal), ``i18n`` (Vietnamese
first, English), ``app`` (the Starlette application: sessions, CSRF, bounds, pages).

Invariants: the console never reads kyso's database, storage or configuration; a session has
one role and sees only that role's pages; document bytes and personal data never reach its
logs; every upload is bounded before it is read whole.
"""
