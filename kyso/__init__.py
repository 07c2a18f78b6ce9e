"""kyso: signing and document-exchange service (application layer)."""

__version__ = "0.1.0"
