"""Caption sets on disk: an image folder and a captions file, in the Flickr8k or the COCO layout.

Flickr8k (``Flickr8k.token.txt``): one caption per line, ``IMAGE#N<TAB>CAPTION``, N = 0, 1, ...;
a split is a file naming one image per line (``Flickr_8k.trainImages.txt``).

COCO (``captions_train2014.json``): ``{"images": [{"id": 1, "file_name": "a.jpg"}, ...],
"annotations": [{"image_id": 1, "caption": "..."}, ...]}``; each split is usually a file of its own,
and a split file of image names works here too.

Readers return the images in file order, each with its captions in file order; the writers are
their inverses (tested). :func:`read_caption_set` also checks that every image exists: a caption
that names a missing image is an error naming the captions file, its line (or image id) and the
image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from attnkit.data.text import read_lines
from attnkit.errors import UserError


@dataclass
class CaptionedImage:
    image: str  # file name, relative to the image folder
    captions: list[str]
    where: str = ""  # where the captions file names it: "line 12" or "image id 42" (for error messages)


def read_flickr8k(path: str | Path) -> list[CaptionedImage]:
    items: dict[str, CaptionedImage] = {}
    for no, line in enumerate(read_lines(path, strip=False), start=1):
        if not line.strip():
            continue
        key, tab, caption = line.rstrip("\r\n").partition("\t")
        if not tab:
            raise UserError(f"{path}: line {no}: expected IMAGE#N<TAB>CAPTION (no tab found)")
        name = key.rsplit("#", 1)[0] if "#" in key else key
        if not name.strip():
            raise UserError(f"{path}: line {no}: no image name before the tab")
        items.setdefault(name, CaptionedImage(name, [], f"line {no}")).captions.append(caption.strip())
    return list(items.values())


def write_flickr8k(items: list[CaptionedImage], path: str | Path) -> None:
    lines = [f"{item.image}#{n}\t{caption}\n" for item in items for n, caption in enumerate(item.captions)]
    Path(path).write_text("".join(lines), encoding="utf-8")


def read_coco(path: str | Path) -> list[CaptionedImage]:
    path = Path(path)
    text = "\n".join(read_lines(path, strip=False))
    try:
        doc = json.loads(text)
        images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
        annotations = [(int(a["image_id"]), str(a["caption"])) for a in doc["annotations"]]
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: not a COCO captions file (needs 'images' with 'id' and 'file_name', and "
                        f"'annotations' with 'image_id' and 'caption'; problem: {err!r})") from None
    items = {image_id: CaptionedImage(name, [], f"image id {image_id}") for image_id, name in images.items()}
    for image_id, caption in annotations:
        if image_id not in items:
            raise UserError(f"{path}: an annotation names image id {image_id}, which 'images' does not list")
        items[image_id].captions.append(caption.strip())
    return [item for item in items.values() if item.captions]


def write_coco(items: list[CaptionedImage], path: str | Path) -> None:
    images = [{"id": i, "file_name": item.image} for i, item in enumerate(items, start=1)]
    annotations = [{"id": n, "image_id": i, "caption": caption}
                   for n, (i, caption) in enumerate(((i, c) for i, item in enumerate(items, start=1)
                                                      for c in item.captions), start=1)]
    Path(path).write_text(json.dumps({"images": images, "annotations": annotations}, indent=1), encoding="utf-8")


def layout_of(path: str | Path, layout: str) -> str:
    """``flickr8k`` or ``coco``; ``auto`` decides by the extension (.json is COCO)."""
    if layout != "auto":
        return layout
    return "coco" if str(path).lower().endswith((".json", ".json.gz")) else "flickr8k"


def read_caption_set(captions: str | Path, images: str | Path, split: str | Path | None = None,
                     layout: str = "auto") -> list[CaptionedImage]:
    """The images of a split (all of the file's when ``split`` is None) with their captions; every
    image must exist in the folder ``images``."""
    folder = Path(images)
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found")
    items = read_coco(captions) if layout_of(captions, layout) == "coco" else read_flickr8k(captions)
    if split is not None:
        by_name = {item.image: item for item in items}
        chosen = []
        for no, name in enumerate(read_lines(split), start=1):
            if not name:
                continue
            if name not in by_name:
                raise UserError(f"{split}: line {no}: image {name} has no caption in {captions}")
            chosen.append(by_name[name])
        items = chosen
    if not items:
        raise UserError(f"{captions}: no captioned images found" + (f" for the split {split}" if split else ""))
    for item in items:
        if not (folder / item.image).is_file():
            raise UserError(f"{captions}: {item.where} names image {item.image}, which is missing "
                            f"({folder / item.image}: file not found)")
    return items
