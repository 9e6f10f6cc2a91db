"""Fixtures of the crm tests."""

from tests.crm.everywhere import world  # noqa: F401  (a fixture: the things every app's rows hang on)
