"""Fixtures of the tokenizer tests."""

import pytest

from tests.helpers.signals import tone


@pytest.fixture
def make_tone():
    return tone
