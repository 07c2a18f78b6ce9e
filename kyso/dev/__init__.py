"""Development tooling: SoftHSM2 tokens, the certomancer PKI and its responders, the Ceph
gateway launcher, for ``kyso dev init | serve``, the test suite and the benchmarks.

Invariants: this package needs the ``devtools`` extra (certomancer, Werkzeug, PyYAML), which
production installations leave out; nothing outside it imports it except the ``kyso dev``
commands (lazily), the tests and the benchmarks, so the service never depends on it.
"""

__all__: list[str] = []
