"""Network faults for tests, on 127.0.0.1 only: an endpoint that accepts connections and never answers.

Point one AWS service at it (e.g. ``AWS_ENDPOINT_URL_DYNAMODB``) to see what a hung dependency does to the
worker: TCP connects succeed, requests are read, no byte ever comes back.
"""

from __future__ import annotations

import socket
import threading


class BlackHole:
    """A TCP listener that accepts every connection, reads whatever arrives and never replies."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="black-hole", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    @staticmethod
    def _swallow(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for conn in self._open:
            conn.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
