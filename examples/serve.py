"""Serving-side preprocessing with the transform artifact a model was trained with.

The artifact (``Compose.save("preprocess.json")`` at training time) is loaded with
``m5stream.transforms`` alone - no torch, no loader - and applied to request bytes, so the model
sees at inference exactly the tensor it would have seen from the training Loader.

Two ways to use it:

* ``Preprocessor`` is the TorchServe-style piece: ``preprocess(body: bytes) -> numpy array``
  (call it from a handler's ``preprocess``; ``torch.from_numpy`` on the result is zero-copy).
* ``python examples/serve.py --artifact preprocess.json [--port 8080]`` runs a small standard
  library HTTP server on 127.0.0.1: ``POST /preprocess`` with the image bytes as the body
  answers the tensor as an ``.npy`` file (``application/x-npy``); ``GET /health`` answers ok.
"""

from __future__ import annotations

import argparse
import io
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from m5stream import transforms


class Preprocessor:
    """Turns request bytes into the model's input tensor with a saved pipeline."""

    def __init__(self, artifact: str, field: str | None = None) -> None:
        self.pipeline = transforms.load(artifact)
        first = self.pipeline.transforms[0] if len(self.pipeline) else None
        # the field the pipeline reads the payload from (DecodeImage's key, or Tokenize's)
        self.field = field or getattr(first, "key", "jpg")

    def __call__(self, body: bytes) -> np.ndarray:
        sample = {self.field: body, "__key__": "request", "__index__": 0}
        out = self.pipeline(sample)  # no rng: random transforms take their eval behaviour
        return np.ascontiguousarray(out[self.field])


def make_server(pre: Preprocessor, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, b"ok\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/preprocess":
                self._reply(404, b"not found\n", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                tensor = pre(body)
            except Exception as exc:  # the client gets the reason, the server keeps running
                self._reply(400, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain")
                return
            buf = io.BytesIO()
            np.save(buf, tensor, allow_pickle=False)
            self._reply(200, buf.getvalue(), "application/x-npy")

        def _reply(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--field", default=None)
    ap.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    a = ap.parse_args()
    server = make_server(Preprocessor(a.artifact, a.field), a.port)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
