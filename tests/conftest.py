"""Shared fixtures: personas, a bootstrapped cluster, a real Celery worker, cleanup by PID."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.support.personas import ADMIN_PASSWORD, VIEWER_PASSWORD, basic_auth
from tests.support.workers import Workers, kill_database_processes, worker_env


@pytest.fixture
def bootstrapped(db: None) -> None:
    from console import services

    services.cluster_bootstrap(
        name="cluster.local",
        node_name=settings.NODE_NAME,
        node_address="127.0.0.1",
        admin_username="admin",
        admin_password=ADMIN_PASSWORD,
    )


@pytest.fixture
def admin_user(bootstrapped: None):
    from console.models import User

    return User.objects.get(username="admin")


@pytest.fixture
def viewer_user(bootstrapped: None):
    from console.models import User

    return User.objects.create_user(
        username="viewer", password=VIEWER_PASSWORD, role=User.Role.VIEWER
    )


@pytest.fixture
def admin_api(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth("admin", ADMIN_PASSWORD))
    return client


@pytest.fixture
def viewer_api(viewer_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth("viewer", VIEWER_PASSWORD))
    return client


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker) -> Iterator[Workers]:
    """Real Celery workers consuming the node, control and sync queues."""
    with django_db_blocker.unblock():
        env = worker_env()
    workers = Workers(env)
    try:
        yield workers
    finally:
        workers.stop()
        kill_database_processes()


@pytest.fixture(scope="session")
def live_server_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    """The environment of a console process on the test database (live servers, workers)."""
    with django_db_blocker.unblock():
        return worker_env()


@pytest.fixture
def live_worker(celery_worker, transactional_db) -> Iterator[Workers]:
    """For tests that need the workers: committed data; afterwards every sync job is told to
    end and the databases are killed."""
    if celery_worker.sync.poll() is not None:  # a test killed it and did not get to restart it
        celery_worker.start_sync()
    try:
        yield celery_worker
    finally:
        from replication import control
        from replication.models import ReplicaOf

        for uid in ReplicaOf.objects.values_list("destination_id", flat=True):
            control.desired_publish(uid, generation=0, state="disabled")
        kill_database_processes()


@pytest.fixture
def admin_client(admin_user):
    """The Django test client, signed in as the admin."""
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer_client(viewer_user):
    from django.test import Client

    client = Client()
    client.force_login(viewer_user)
    return client


@pytest.fixture
def remote_addr() -> str:
    """A client address of its own (sign-in throttling counts per account and address)."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


@pytest.fixture(autouse=True)
def _sign_in_failures_forgotten() -> Iterator[None]:
    """Failed sign-ins of one test never throttle another (console.auth counts per account too,
    in the control Redis that the whole run shares)."""
    yield
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match="console:*:login:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def database(admin_user):
    """A database row (pending: no worker runs its task in a non-transactional test)."""
    from console import services
    from tests.support.pages import DEFAULT_PASSWORD, MB

    return services.database_create(
        actor=admin_user, name="db1", memory_size=100 * MB, password=DEFAULT_PASSWORD
    )


@pytest.fixture
def pair(admin_user):
    """Two active database rows, a and b (no processes)."""
    from console import services
    from tests.support.pages import MB, activate

    a = activate(services.database_create(actor=admin_user, name="a", memory_size=100 * MB))
    b = activate(services.database_create(actor=admin_user, name="b", memory_size=100 * MB))
    return a, b
