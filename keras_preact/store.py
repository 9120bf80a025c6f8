"""The zoo store: the zoo's model cards and weight files, where they are found, downloads and sha256 checks.

The bottom of the package: it imports nothing of keras_preact (Keras only inside `_download`),
so the builders resolve `weights="<zoo name>"` through it (`resolve_weights`, called by
`keras_preact.models.weights`) without importing the zoo's evaluation and publishing, which
build on it (`keras_preact.zoo` re-exports its names).

A zoo model is a folder `<name>/` holding `model_card.json` (what it is, how it was
trained, how good it is, and its weight file's name, sha256 and source) and, unless
the card names a URL, `<name>.weights.h5` beside it.

Weights are found in the order keras.applications and timm users expect:

1. an explicit zoo directory, `$KERAS_PREACT_ZOO`: a folder of `<name>/` folders (your
   own published models, or a local copy of ours). Its cards come first.
2. the local cache, `$KERAS_HOME/keras_preact/<name>/` (`~/.keras/keras_preact/` by
   default), where downloads land.
3. the source the card names: package data shipped in the wheel
   (`keras_preact/zoo/models/`, the small CIFAR models: 1-4 MB each, so that an offline
   `pip install` has the zoo), or a URL, downloaded once with
   `keras.utils.get_file(..., file_hash=<sha256>)` (for anything large).

Every weight file is checked against its card's sha256 before it is used. A file that
fails the check is an error naming both hashes; nothing is silently replaced, and there
is never a fallback to random weights.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

ZOO_ENV = "KERAS_PREACT_ZOO"
CARD_FILE = "model_card.json"
# Our published models, shipped as package data (cards always; weights when small).
PACKAGED_ZOO = Path(__file__).resolve().parent / "zoo" / "models"
# Where a card says its weights come from (card["weights"]["source"]).
SOURCE_PACKAGE = "package"  # beside the card in the installed package
SOURCE_LOCAL = "local"  # beside the card in a zoo directory of the user's
SOURCE_URL = "url"  # downloaded from card["weights"]["url"] into the cache


class ZooError(ValueError):
    """A zoo model, its card or its weights cannot be used; the message says what to do."""


# --- Finding zoo models ----------------------------------------------------------------


def explicit_zoo_dir():
    """`$KERAS_PREACT_ZOO` as a Path, or None when unset."""
    override = os.environ.get(ZOO_ENV)
    return Path(override).expanduser() if override else None


def zoo_dirs():
    """The zoo directories searched for cards, first match wins: explicit, then packaged."""
    explicit = explicit_zoo_dir()
    return [explicit, PACKAGED_ZOO] if explicit is not None else [PACKAGED_ZOO]


def cache_dir():
    """The download cache: `$KERAS_HOME/keras_preact` (`~/.keras/keras_preact` by default)."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "keras_preact"


def _card_folders():
    """{name: folder holding its card}, explicit zoo directory first."""
    found = {}
    for root in zoo_dirs():
        if root.is_dir():
            for card in root.glob(f"*/{CARD_FILE}"):
                if not card.parent.name.startswith("."):
                    found.setdefault(card.parent.name, card.parent)
    return found


def list_zoo():
    """Names of the models in the zoo (every folder with a model card), sorted."""
    return sorted(_card_folders())


def model_dir(name):
    """Folder of zoo model `name`'s card; ZooError listing the zoo if there is none."""
    folders = _card_folders()
    if name not in folders:
        known = ", ".join(sorted(folders)) or "none"
        raise ZooError(f"Unknown zoo model {name!r}. Models in the zoo: {known}.")
    return folders[name]


def get_card(name):
    """The model card of zoo model `name`, as a dict."""
    return json.loads((model_dir(name) / CARD_FILE).read_text())


def sha256_of(path):
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Finding a zoo model's weights --------------------------------------------------------


def weights_path(name):
    """Path of zoo model `name`'s verified `.weights.h5` file, downloading it if the card says so.

    Raises:
        ZooError: a file found fails the card's sha256, the card names no source
            that has the file, or the download fails (the message names the URL).
    """
    card = get_card(name)
    weights = card["weights"]
    expected = weights["sha256"]
    beside_card = model_dir(name) / weights["file"]
    cached = cache_dir() / name / weights["file"]
    explicit = explicit_zoo_dir()
    # Explicit directory, then cache, then the card's source.
    candidates = [beside_card] if explicit and beside_card.is_relative_to(explicit) else []
    candidates += [cached, beside_card]
    for path in candidates:
        if path.is_file():
            _verify(path, expected, cached=path == cached)
            return path
    url = weights.get("url")
    if url:
        return _download(name, url, weights["file"], expected)
    raise ZooError(
        f"Zoo model {name!r} is incomplete: its weight file {weights['file']} is in none of "
        f"{', '.join(str(p) for p in dict.fromkeys(candidates))}, and its card names no URL. "
        f"Reinstall keras-preact, or put the file in {ZOO_ENV}/{name}/."
    )


def _verify(path, expected, *, cached):
    actual = sha256_of(path)
    if actual == expected:
        return
    remedy = ("Delete it and it will be downloaded again." if cached else
              "Restore it (reinstall keras-preact, or copy the file again) or publish the "
              "model again.")
    raise ZooError(
        f"The weight file {path} is damaged: its sha256 is {actual}, but the model card "
        f"says {expected}. {remedy}"
    )


def _download(name, url, file_name, expected):
    """Download `url` into the cache with keras.utils.get_file; only a verified file lands there.

    The file is fetched into a private staging folder and moved into the cache only after
    its sha256 matched, so an interrupted or corrupted download never sits in the cache.
    """
    import keras

    target = cache_dir() / name / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        try:
            fetched = keras.utils.get_file(fname=file_name, origin=url, cache_dir=str(staging),
                                           cache_subdir="fetched")
        except Exception as error:  # get_file raises a bare Exception for URL failures.
            raise ZooError(
                f"Could not download the weights of zoo model {name!r} from {url}: {error}. "
                f"Without network access, download {file_name} elsewhere and put it in "
                f"{target.parent}/ (the cache) or in $KERAS_PREACT_ZOO/{name}/ beside a copy of "
                f"its model card, or pass weights='/path/to/{file_name}'."
            ) from None
        actual = sha256_of(fetched)
        if actual != expected:
            raise ZooError(
                f"The file downloaded from {url} is not the weights of zoo model {name!r}: its "
                f"sha256 is {actual}, but the model card says {expected}. It was not kept."
            )
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_weights(name, *, architecture, classes, include_top):
    """Path of zoo model `name`'s weight file, after checking it fits the request.

    Called by the builders for `weights="<zoo name>"` before any layer is built.

    Args:
        name: str. A zoo model name (see `list_zoo()`).
        architecture: str or None. Registry name of the architecture being
            built; None skips this check.
        classes: int. Class count of the model being built.
        include_top: bool. Whether it has a classifier head (only then must
            the class count match).

    Raises:
        ZooError (a ValueError): unknown name; the card's architecture or (with
            include_top) class count differs from the request; the file cannot
            be found, fails its sha256 or cannot be downloaded.
    """
    card = get_card(name)
    if architecture is not None and card["architecture"] != architecture:
        raise ZooError(
            f"Zoo model {name!r} holds weights for architecture {card['architecture']!r}, "
            f"but the model being built is {architecture!r}. Build "
            f"get_model({card['architecture']!r}, weights={name!r}) instead."
        )
    if include_top and int(card["classes"]) != classes:
        raise ZooError(
            f"Zoo model {name!r} has {card['classes']} classes, but the model being built "
            f"has classes={classes}. Pass classes={card['classes']}, or include_top=False "
            "to reuse its features under a new head."
        )
    return str(weights_path(name))

