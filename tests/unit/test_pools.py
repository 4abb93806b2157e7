"""Process-wide state across fork: thread pools and S3 clients are the child's own, and a
child forked after the CRT was used survives the fork."""

from __future__ import annotations

import pytest

from m5stream._pools import process_pool
from m5stream.errors import M5Error
from m5stream.storage import s3
from tests.helpers import in_forked_child


def test_a_pool_is_made_once_per_name_and_not_inherited_by_a_fork() -> None:
    a = process_pool("m5-test-a", 2)
    assert process_pool("m5-test-a", 5) is a and process_pool("m5-test-b", 1) is not a
    assert a.submit(lambda: 41 + 1).result(5) == 42

    def child() -> bool:  # the parent's pool has no threads here: the child makes its own
        pool = process_pool("m5-test-a", 2)
        return pool is not a and pool.submit(lambda: 7).result(5) == 7

    assert in_forked_child(child) == b"1"


def test_a_child_forked_after_s3_clients_were_made_gets_its_own() -> None:
    # destroying the parent's CRT client in the child crashed it at the fork (its teardown
    # waits on event-loop threads that only the parent has)
    cfg = s3.S3Config(endpoint="http://127.0.0.1:9", region="us-east-1")
    parent = s3.client(cfg)
    assert s3.client(cfg) is parent
    with pytest.raises(M5Error):  # the client has run: event loops, resolver, a connection
        parent.head("bucket", "key")
    assert in_forked_child(lambda: s3.client(cfg) is not parent) == b"1"
    assert s3.client(cfg) is parent  # the parent's is untouched
