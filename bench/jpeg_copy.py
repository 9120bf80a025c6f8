"""What a folder of JPEG images stores: encoder quality, chroma subsampling and bits per pixel.

    python -m bench.jpeg_copy                                                    # data/cifar10-jpeg
    python -m bench.jpeg_copy --dataset folder:../shared/datasets/cifar10-jpeg.tar.gz
    python -m bench.jpeg_copy --quick                                            # a generated folder

Every accuracy measured here is on CIFAR-10 (JPEG q75 copy), and the zoo's ResNet-20 models stay
about 3 points under the v1 paper's 91.25% on the original images. The original images cannot be
downloaded on these machines, so this records what the copy keeps of them, read from the files
themselves (headers and sizes; no image is decoded):

- quality: each file's quantization tables, matched against the tables libjpeg writes for IJG
  quality 1..100 (the standard tables of the JPEG spec's Annex K, scaled; obtained by encoding a
  tiny image with Pillow at each quality, so no table is typed in here). "custom" when none match.
- chroma subsampling: 4:2:0 stores the two colour planes at half the resolution in both
  directions (16x16 samples for a 32x32 image), 4:2:2 halves only the width, 4:4:4 keeps them.
- bits per pixel: the entropy-coded image data (from the first start-of-scan segment to the end
  marker, so without the ~600 bytes of tables and markers a small file is mostly made of) x 8 /
  (width x height), against 24 for the original 8-bit RGB pixels.

Not a timing bench: the numbers do not depend on the machine, and the JSON records one anyway.
"""

import argparse
import collections
import io
import os
import sys
import tempfile

from bench import common

MODULE = "bench.jpeg_copy"
DEFAULT_DATA = "data/cifar10-jpeg"
DEFAULT_OUT = "bench/results/jpeg_copy.json"
SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}  # PIL.JpegImagePlugin.get_sampling codes


def ijg_quality_by_tables():
    """{(luma table, chroma table): quality} for libjpeg's qualities 1..100, via Pillow."""
    from PIL import Image

    known = {}
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        # first wins: the lowest qualities share tables (clipped at 255)
        known.setdefault(_table_key(Image.open(buffer)), quality)
    return known


def _table_key(image):
    tables = getattr(image, "quantization", None) or {}
    return tuple(tuple(tables[i]) for i in sorted(tables))


def coded_bytes(data):
    """Bytes of entropy-coded data in a JPEG file: after the first SOS segment, before EOI."""
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("not a JPEG marker where one should be")
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:  # start of scan: the coded data follows its header
            return len(data) - (i + 2 + length) - 2
        i += 2 + length
    raise ValueError("no start-of-scan segment")


def describe_split(folder, known):
    """Counts of quality, subsampling and image size, and bytes, over every JPEG under `folder`."""
    from PIL import Image, JpegImagePlugin

    quality, sampling, sizes = collections.Counter(), collections.Counter(), collections.Counter()
    files = total_bytes = coded = pixels = 0
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()  # once: the header for Pillow, the length of the coded data
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG":
                    raise ValueError(f"{path} is {image.format or 'not an image'}, not a JPEG file")
                quality[known.get(_table_key(image), "custom")] += 1
                sampling[SUBSAMPLING.get(JpegImagePlugin.get_sampling(image), "other")] += 1
                sizes[f"{image.width}x{image.height}"] += 1
                pixels += image.width * image.height
            try:
                coded += coded_bytes(data)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
            files += 1
            total_bytes += len(data)
    if not files:
        raise ValueError(f"no files under {folder}")
    return derive_split({"files": files, "quality": dict(quality), "subsampling": dict(sampling),
                         "sizes": dict(sizes), "total_bytes": total_bytes, "total_coded_bytes": coded})


def derive_split(split):
    """A split's files, means and bits per pixel from its counts and byte totals (in place). Results
    before 2026-12 kept the means, not the totals: their means are read as stored (x files = totals)."""
    files = sum(split["sizes"].values())
    pixels = sum(n * int(w) * int(h) for size, n in split["sizes"].items() for w, h in [size.split("x")])
    if "total_bytes" in split:
        split["mean_bytes"] = split["total_bytes"] / files
        split["mean_coded_bytes"] = split["total_coded_bytes"] / files
    split["files"] = files
    split["bits_per_pixel"] = split["mean_coded_bytes"] * files * 8 / pixels
    return split


def derive(result):
    """Every split's derived figures recomputed from its counts and bytes (derive_split), in place."""
    for split in result["splits"].values():
        derive_split(split)
    return result


def markdown(result):
    """The table of a result, its files and bits per pixel recomputed from its counts (derive_split)."""
    import copy

    splits = derive(copy.deepcopy(result))["splits"]
    rows = [[split, f"{s['files']:,}", _counts(s["quality"]), _counts(s["subsampling"]), _counts(s["sizes"]),
             f"{s['mean_bytes']:,.0f}", f"{s['mean_coded_bytes']:,.0f}", f"{s['bits_per_pixel']:.2f}"]
            for split, s in splits.items()]
    source = "a generated folder (--quick)" if result.get("quick") else f"`{result['dataset']}`"
    return (f"JPEG files of {source}, read from the files (nothing decoded); "
            "the original 8-bit RGB pixels are 24 bits per pixel.\n\n"
            + common.markdown_table(["split", "files", "IJG quality (files)", "chroma subsampling (files)",
                                     "size (files)", "mean file bytes", "mean coded bytes",
                                     "coded bits per pixel"], rows))


def _counts(counter):
    return ", ".join(f"{key} ({n:,})" for key, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def make_quick_folder(root):
    """train/: quality 75, 4:2:0 (like the CIFAR-10 copy); test/: quality 90, 4:4:4."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, options in (("train", {"quality": 75, "subsampling": 2}), ("test", {"quality": 90, "subsampling": 0})):
        for c in range(2):
            folder = os.path.join(root, split, f"class{c}")
            os.makedirs(folder, exist_ok=True)
            for i in range(3):
                pixels = rng.randint(0, 256, (32, 32, 3)).astype("uint8")
                Image.fromarray(pixels).save(os.path.join(folder, f"{i:04d}.jpg"), **options)
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=f"folder:{DEFAULT_DATA}",
                        help="folder:PATH of a split/class/*.jpg tree, or folder:ARCHIVE.tar.gz")
    parser.add_argument("--splits", default="train,test")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="a generated 12-file folder instead of --dataset")
    args = parser.parse_args(argv)
    result = common.result_header(MODULE, args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            root = make_quick_folder(tmp)
        else:
            from keras_preact.data import DatasetError, parse_dataset

            try:
                kind, root = parse_dataset(args.dataset)
            except DatasetError as error:
                parser.error(str(error))
            if kind != "folder":
                parser.error(f"--dataset must be folder:PATH (a tree of JPEG files), got {args.dataset!r}")
        known = ijg_quality_by_tables()
        splits = {}
        for split in [s for s in args.splits.split(",") if s]:
            folder = os.path.join(root, split)
            if not os.path.isdir(folder):
                parser.error(f"{folder} does not exist; --splits names folders under {root}")
            splits[split] = describe_split(folder, known)
    result.update({"dataset": args.dataset, "splits": splits})
    common.finish(result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
