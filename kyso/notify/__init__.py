"""Notifications: tell systems, citizens and officials when something changes.

- ``outbox``: which ledger events call for a notification, staged in the change's transaction
  (``notify_events``), and how readers consume the outbox without skipping a late commit;
- ``webhooks`` (with ``signing`` and ``http``): Standard Webhooks subscriptions and deliveries;
- ``citizens``: per-dossier consent, Zalo ZNS first and an SMS brandname gateway as fallback;
- ``runner``: the server's background task, the live streams' wake-ups, metrics and pruning;
- ``schema``: the tables (component ``notify``).

No protobuf types here: ``kyso.operations.notifications`` and ``kyso.services.notifications``
are the API's side.
"""
