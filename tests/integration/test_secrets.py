"""No credential ever leaves the process (issue 16): with a known secret access key and a
session token in the environment, the Loader (three executors), ``state_dict``, stats,
``m5.checkpoint.save`` (to S3 and to disk), ``m5stream bench --json`` and ``inspect``, the
manifest (also as written by ``dataset(manifest=...)``) and the error paths - a missing
object, a missing prefix, a wrong secret against SeaweedFS (which enforces SigV4:
``SignatureDoesNotMatch``) - are run, and every log line (caplog at DEBUG, and the
subprocesses' stderr with logging at DEBUG), error message, traceback, pickled error, state
dict, JSON report and file written is searched for the secrets: none may hold one."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import m5stream as m5
from m5stream import checkpoint
from m5stream.storage import s3
from tests.helpers import make_tar_dataset
from tests.integration.conftest import BUCKET, SECRET

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "m5stream-test-session-token-Zq8x"
WRONG = "m5stream-wrong-secret-Kp3v"
SECRETS = (SECRET, TOKEN, WRONG)


def identity(sample: dict[str, object]) -> dict[str, object]:
    return sample


def _leaks(texts: list[str]) -> list[str]:
    return [t[:300] for t in texts if any(s in t for s in SECRETS)]


def _error_texts(exc: BaseException) -> list[str]:
    back = pickle.loads(pickle.dumps(exc))
    return [
        str(exc),
        repr(exc),
        str(back),
        repr(getattr(exc, "context", "")),
        "".join(traceback.format_exception(exc)),
    ]


def _files_text(root: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()]


def _upload(tmp_path: Path, prefix: str) -> str:
    local = tmp_path / "tars"
    make_tar_dataset(local, shards=2, per_shard=12)
    c = s3.client()
    for p in sorted(local.iterdir()):
        c.put(BUCKET, f"{prefix}/{p.name}", path=str(p))
    return f"s3://{BUCKET}/{prefix}/"


def test_no_secret_in_logs_errors_state_or_checkpoints(
    s3_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET  # the server's real secret
    caplog.set_level(logging.DEBUG)
    source = _upload(tmp_path, "secrets")
    texts: list[str] = []
    ds = m5.dataset(source, manifest=str(tmp_path / "manifest.json"))
    texts += [ds.manifest.to_json(), repr(ds.manifest), (tmp_path / "manifest.json").read_text()]
    for executor, workers in (("inline", 0), ("threads", 0), ("processes", 2)):
        tf = None if executor == "threads" else identity
        with m5.Loader(ds, 4, transform=tf, executor=executor, num_workers=workers) as lo:
            n = sum(1 for _ in lo)
            assert n == 6
            texts += [json.dumps(lo.state_dict()), repr(lo.stats), repr(lo)]
            if executor == "processes":
                checkpoint.save(
                    f"s3://{BUCKET}/secrets-ckpt/step-1", {"w": [1, 2]}, loader=lo, blocking=True
                )
                checkpoint.save(str(tmp_path / "ckpt"), {"w": [1, 2]}, loader=lo, blocking=True)
    c = s3.client()
    for name in ("state.pt", "loader.json", "MANIFEST.json"):
        body = c.get(BUCKET, f"secrets-ckpt/step-1/{name}")
        texts.append(body.decode("latin-1"))
    texts += _files_text(tmp_path / "ckpt")
    # error paths: a missing object, a missing prefix, a missing bucket
    for bad in (
        [f"s3://{BUCKET}/secrets/missing.tar"],
        f"s3://{BUCKET}/no-such-prefix/",
        "s3://m5-no-such-bucket/x/",
    ):
        with pytest.raises(m5.M5Error) as e:
            m5.dataset(bad)
        texts += _error_texts(e.value)
    with pytest.raises(m5.NotFound) as nf:
        c.get(BUCKET, "secrets/missing.bin")
    texts += _error_texts(nf.value)
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    assert _leaks([f"x{SECRET}y", f"{TOKEN}"]) and not _leaks(["m5stream"])  # the search works
    assert len(texts) > 20 and not _leaks(texts)


_SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import m5stream as m5
try:
    ds = m5.dataset(sys.argv[1])
    with m5.Loader(ds, 4, num_workers=2, executor="processes", transform=lambda s: s) as lo:
        for _ in lo:
            pass
        print(json.dumps(lo.state_dict()))
except m5.M5Error as exc:
    import pickle, traceback
    print(json.dumps({"error": str(exc), "repr": repr(exc), "type": type(exc).__name__,
                      "pickled": str(pickle.loads(pickle.dumps(exc))),
                      "trace": traceback.format_exc()}))
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_no_secret_in_cli_reports_or_wrong_secret_errors(s3_endpoint: str, tmp_path: Path) -> None:
    source = _upload(tmp_path, "secrets-cli")
    base = dict(os.environ, PYTHONPATH=str(ROOT), M5STREAM_CACHE=str(tmp_path / "cache"))
    with_token = dict(base, AWS_SESSION_TOKEN=TOKEN)
    wrong = dict(base, AWS_SECRET_ACCESS_KEY=WRONG, AWS_SESSION_TOKEN=TOKEN)
    cli = [sys.executable, "-m", "m5stream.cli"]
    texts: list[str] = []
    report = tmp_path / "bench.json"
    bench = _run(
        [
            *cli,
            "bench",
            source,
            "--batches",
            "3",
            "--batch-size",
            "4",
            "--json",
            str(report),
            "--quiet",
        ],
        base,
    )
    assert bench.returncode == 0, bench.stderr
    texts += [bench.stdout, bench.stderr, report.read_text()]
    inspect = _run([*cli, "inspect", source, "--json"], base)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["samples"] == 24
    texts += [inspect.stdout, inspect.stderr]
    # a session token in the environment (SeaweedFS may or may not accept it): whatever it
    # does, the token is nowhere in what comes out
    for args in (
        [*cli, "inspect", source, "--json"],
        [sys.executable, "-c", _SCRIPT, source],
    ):
        r = _run(args, with_token)
        texts += [r.stdout, r.stderr]
    # the wrong secret: SigV4 fails; the error says so, naming the object, never the secret
    r = _run([*cli, "inspect", source], wrong)
    assert r.returncode == 2
    assert "SignatureDoesNotMatch" in r.stderr or "403" in r.stderr, r.stderr
    texts += [r.stdout, r.stderr]
    r = _run([sys.executable, "-c", _SCRIPT, source], wrong)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # SeaweedFS answers 403 InvalidAccessKeyId when a session token comes with the key
    assert out["type"] == "PermissionDenied", out
    assert out["error"] == (
        f"S3 ListObjectsV2 failed: 403 InvalidAccessKeyId [uri=s3://{BUCKET}/secrets-cli/]"
    ), out
    texts += [r.stdout, r.stderr]
    r = _run([*cli, "bench", f"s3://{BUCKET}/secrets-cli/missing.tar"], wrong)
    assert r.returncode == 2
    texts += [r.stdout, r.stderr]
    texts += _files_text(tmp_path / "cache")
    assert not _leaks(texts)
