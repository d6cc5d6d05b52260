"""Fixtures of the worker tests: the provider a module is about (providers/, simulator/)."""

from __future__ import annotations

import pytest

from tests.support.vendors import Vendor


@pytest.fixture
def vendor(request: pytest.FixtureRequest) -> Vendor:
    """The provider the module names: ``pytestmark = pytest.mark.vendor(NAME)``, with
    ``credential=value`` for any credential whose made-up value a table pins."""
    marker = request.node.get_closest_marker("vendor")
    if marker is None:
        raise LookupError(f"{request.node.nodeid}: `vendor` needs pytest.mark.vendor(name)")
    return Vendor(*marker.args, **marker.kwargs)
