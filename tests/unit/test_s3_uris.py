"""``s3://bucket/key`` URIs: the bucket and the whole key, whatever characters the key holds."""

from __future__ import annotations

import pytest

import m5stream as m5
from m5stream.storage import s3


def test_s3_uris_split_into_bucket_and_key() -> None:
    assert s3.parse_s3_uri("s3://bkt/a/b.tar") == ("bkt", "a/b.tar")
    # an S3 key may hold what a URL parser would take for a query or a fragment
    assert s3.parse_s3_uri("s3://bkt/photos/a?b#c.jpg") == ("bkt", "photos/a?b#c.jpg")
    assert s3.parse_s3_uri("s3://bkt") == ("bkt", "")
    assert s3.parse_s3_uri("s3://bkt/") == ("bkt", "")
    for bad in ("s3:///key", "http://bkt/key", "bkt/key", "s3:/bkt/key"):
        with pytest.raises(m5.ConfigError, match="not an s3://bucket/key URI"):
            s3.parse_s3_uri(bad)
