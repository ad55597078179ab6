"""Browser tests that need live processes share the integration suite's fixtures."""

from tests.integration.conftest import (  # noqa: F401 - pytest finds fixtures by name
    celery_worker_factory,
    services_env,
)
