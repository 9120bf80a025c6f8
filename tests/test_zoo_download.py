"""Where zoo weights come from: explicit directory, cache, package data, or a download.

The downloads go to an HTTP server that each test starts on 127.0.0.1: a good file is
cached and loads, a corrupted one raises an error naming both sha256 and leaves nothing
in the cache, an unreachable server raises one clear error naming the URL.
"""

import http.server
import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest

import keras_preact
from keras_preact import zoo
from test_zoo_support import (  # noqa: F401 (fixtures)
    ARCHITECTURE,
    MODEL_KWARGS,
    ZOO_NAME,
    published_zoo,
    random_pixels,
    trained_model,
)

WEIGHTS_FILE = f"{ZOO_NAME}.weights.h5"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private KERAS_HOME, so the cache starts empty."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served/; yields (base URL, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    httpd.shutdown()
    httpd.server_close()


def card_with_url(zoo_root, url):
    """A zoo directory holding only the tiny model's card, whose weights come from `url`."""
    folder = zoo_root / ZOO_NAME
    folder.mkdir(parents=True)
    card = json.loads((published_zoo() / ZOO_NAME / zoo.CARD_FILE).read_text())
    card["weights"].update(source=zoo.SOURCE_URL, url=url)
    (folder / zoo.CARD_FILE).write_text(json.dumps(card))
    return card


def test_a_good_download_is_cached_verified_and_loads(tmp_path, home, server, monkeypatch):
    base, served, requests = server
    shutil.copy(published_zoo() / ZOO_NAME / WEIGHTS_FILE, served / WEIGHTS_FILE)
    card = card_with_url(tmp_path / "zoo", f"{base}/{WEIGHTS_FILE}")
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))

    model = keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, **MODEL_KWARGS)
    cached = home / "keras_preact" / ZOO_NAME / WEIGHTS_FILE
    assert cached.is_file() and zoo.sha256_of(cached) == card["weights"]["sha256"]
    assert sorted(p.name for p in cached.parent.iterdir()) == [WEIGHTS_FILE], "no staging left"
    images = np.stack([random_pixels(seed) for seed in range(2)]).astype("float32")
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               trained_model().predict(images, verbose=0), atol=1e-6)
    # The second use reads the cache: no second request.
    assert zoo.weights_path(ZOO_NAME) == cached
    assert requests == [f"/{WEIGHTS_FILE}"]


def test_a_corrupted_download_names_both_hashes_and_leaves_no_file(tmp_path, home, server,
                                                                     monkeypatch):
    base, served, _ = server
    data = bytearray((published_zoo() / ZOO_NAME / WEIGHTS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / WEIGHTS_FILE).write_bytes(bytes(data))
    card = card_with_url(tmp_path / "zoo", f"{base}/{WEIGHTS_FILE}")
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))

    with pytest.raises(zoo.ZooError) as error:
        keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, **MODEL_KWARGS)
    message = str(error.value)
    assert card["weights"]["sha256"] in message
    assert zoo.sha256_of(served / WEIGHTS_FILE) in message
    assert "It was not kept" in message
    cache = home / "keras_preact" / ZOO_NAME
    assert not cache.exists() or not any(cache.iterdir())


def test_an_unreachable_server_is_one_clear_error(tmp_path, home, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{WEIGHTS_FILE}"
    card_with_url(tmp_path / "zoo", url)
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))

    started = time.monotonic()
    with pytest.raises(zoo.ZooError) as error:
        zoo.weights_path(ZOO_NAME)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"from {url}" in message
    assert "$KERAS_PREACT_ZOO" in message and "weights='/path/to/" in message
    cache = home / "keras_preact" / ZOO_NAME
    assert not cache.exists() or not any(cache.iterdir())


def test_a_damaged_cached_file_is_an_error_not_a_silent_download(tmp_path, home, server,
                                                                 monkeypatch):
    base, served, requests = server
    shutil.copy(published_zoo() / ZOO_NAME / WEIGHTS_FILE, served / WEIGHTS_FILE)
    card_with_url(tmp_path / "zoo", f"{base}/{WEIGHTS_FILE}")
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    cached = zoo.weights_path(ZOO_NAME)
    cached.write_bytes(cached.read_bytes()[:1000])
    with pytest.raises(zoo.ZooError, match="is damaged: its sha256 .* Delete it"):
        zoo.weights_path(ZOO_NAME)
    assert len(requests) == 1


def test_resolution_order_explicit_then_cache_then_package(tmp_path, home, monkeypatch):
    name = "resnetv2_20_cifar10"
    packaged = zoo.PACKAGED_ZOO / name / f"{name}.weights.h5"
    monkeypatch.delenv(zoo.ZOO_ENV, raising=False)
    assert zoo.model_dir(name) == zoo.PACKAGED_ZOO / name
    assert zoo.weights_path(name) == packaged
    # A verified copy in the cache comes before the package data.
    cached = home / "keras_preact" / name / packaged.name
    cached.parent.mkdir(parents=True)
    shutil.copy(packaged, cached)
    assert zoo.weights_path(name) == cached
    # A zoo directory named by KERAS_PREACT_ZOO comes first: its card and its file.
    explicit = tmp_path / "zoo" / name
    shutil.copytree(zoo.PACKAGED_ZOO / name, explicit)
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    assert zoo.model_dir(name) == explicit
    assert zoo.weights_path(name) == explicit / packaged.name
