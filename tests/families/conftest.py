"""What the family folders share: the golden-report fixture (files in ``files/`` beside each test module)."""

from tests.golden.conftest import golden

__all__ = ["golden"]
