"""The application layer: one entry per business operation, between servicers and domain.

A servicer converts protobuf to domain values, calls one operation, and converts the result
back. An operation owns everything beyond the role table of ``kyso.authz``: the decisions that
need the domain (which clients may use a key, which units a caller may act for), the order of
its steps, where each step runs (a thread for I/O, the worker-process pools for PDF work), and
its transaction: a change of state and its ledger events commit together (``kyso.operations.
ledger``). Operations never see protobuf types.

- ``documents``: store a document (after an upload), read one, describe one.
- ``signing``: seal a PDF on the server with an HSM key.
- ``twophase``: prepare, complete, cancel and list signatures made on officials' tokens.
- ``exchange``: send, forward, receive, acknowledge, set and track statuses of edXML packages;
  ``hops``: the receipts hubs sign for each other and the hub's own key.
- ``verifying``: verify a PDF (in the verifier pool) or an edXML package.
- ``directory``: read the unit directory (units, children, search, routes).
- ``ledger``: events staged with their change and appended by the drainer; ``ledger_reading``:
  entries, tree heads and proofs for auditors.
- ``running``: the bounded pool for blocking work; ``wiring``: every operation, built once.
"""
