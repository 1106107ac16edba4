import sys
from pathlib import Path

import pytest

# The helpers (synthetic run writer, CDP client) live next to the tests, not in the package.
sys.path.insert(0, str(Path(__file__).parent))

from report_cdp import Browser, find_chromium  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        pytest.fail(
            "the report's browser test needs Chromium: install Debian's package "
            "(apt-get install -y chromium) or put chromium on PATH"
        )
    with Browser(binary) as b:
        for domain in ("Network.enable", "Page.enable", "Runtime.enable", "Log.enable"):
            b.page(domain)
        b.page(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        )
        yield b
