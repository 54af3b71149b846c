"""The widget's fixtures: the real browser (``browser_kit``)."""

from tests.engine.widget.browser_kit import browser  # noqa: F401  (the fixture)
