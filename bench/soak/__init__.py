"""The soak harness of issue 14: legitimate clients beside hostile ones against a real
``kyso serve`` on loopback, bounded in time (``make soak``; see docs/operations.md, "Soak test").

- :mod:`bench.soak.settings`: what runs and for how long (``KYSO_SOAK_*`` environment variables);
- :mod:`bench.soak.server`: the server child process, its configuration and its memory;
- :mod:`bench.soak.legit`: the legitimate clients and their per-call latencies;
- :mod:`bench.soak.hostile`: the attackers (run in their own child process) and their outcomes;
- :mod:`bench.soak.payloads`: PDFs, XML bombs and ZIP bombs;
- :mod:`bench.soak.report`: the rows for bench/results.json and the readable table;
- :mod:`bench.soak.run`: the run itself (quiet phase, attack phase, checks afterwards).
"""
