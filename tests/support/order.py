"""Long test files first, so that two test processes finish together.

``make test`` hands whole files to its processes (``--dist loadfile``), in collection order
(``--no-loadscope-reorder``; xdist's default order, most tests first, put the files of one or two
long crash tests last, where one process ran them alone for minutes while the other waited).
A file with any test marked ``slow`` is started first; the rest keep their order.
"""

from __future__ import annotations

import pytest

__all__ = ["pytest_collection_modifyitems"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable-sort the items: files holding a ``slow`` test before the others."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)
