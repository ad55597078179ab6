"""The generic framework's tests: every registered family, each with its app's row factory."""

from tests.support.families import install_family_factories

install_family_factories()
