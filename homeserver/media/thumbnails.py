"""Thumbnail sizing (pure) and rendering (Pillow, run on a worker thread).

Sizes are the ones clients ask for and the spec suggests servers pre-generate; a request is
answered with the smallest of them that is at least as large as asked, so the cache stays small
whatever sizes clients invent, and a thumbnail is never smaller than asked unless the original is.
"""

from __future__ import annotations

import io

# (width, height, method), smallest first within a method.
THUMBNAIL_SIZES = [(32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
                   (800, 600, "scale")]
THUMBNAILABLE = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/apng"}
MAX_SOURCE_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 40_000_000  # decompression-bomb guard, checked before any pixel is decoded


class CannotThumbnail(Exception):
    pass


def choose_size(width: int, height: int, method: str) -> tuple[int, int, str]:
    """The smallest configured size of that method at least as large as asked (else the largest)."""
    same = [s for s in THUMBNAIL_SIZES if s[2] == method]
    for s in same:
        if s[0] >= width and s[1] >= height:
            return s
    return same[-1]


def target_size(src_w: int, src_h: int, width: int, height: int, method: str) -> tuple[int, int]:
    """Output dimensions, never upscaled: crop fills exactly width x height (clipped to the
    original), scale fits inside width x height keeping the aspect ratio."""
    if method == "crop":
        return min(width, src_w), min(height, src_h)
    scale = min(width / src_w, height / src_h, 1.0)
    return max(1, round(src_w * scale)), max(1, round(src_h * scale))


def render(data: bytes, width: int, height: int, method: str) -> tuple[bytes, str, int, int]:
    """Returns (bytes, content type, actual width, actual height)."""
    from PIL import Image, ImageOps

    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        src_w, src_h = img.size
        if src_w < 1 or src_h < 1 or src_w * src_h > MAX_PIXELS:
            raise CannotThumbnail("image dimensions out of range")
        if img.format == "JPEG":
            img.draft("RGB", (width * 2, height * 2))  # decode at a reduced scale when possible
        img.load()
        img = ImageOps.exif_transpose(img) or img
    except CannotThumbnail:
        raise
    except Exception as e:  # Pillow raises many types for corrupt or unsupported input
        raise CannotThumbnail(str(e)) from None
    src_w, src_h = img.size
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    fmt = "PNG" if has_alpha else "JPEG"
    img = img.convert("RGBA" if has_alpha else "RGB")
    w, h = target_size(src_w, src_h, width, height, method)
    if method == "crop":
        scale = max(w / src_w, h / src_h)
        resized = img.resize((max(w, round(src_w * scale)), max(h, round(src_h * scale))), Image.Resampling.LANCZOS)
        left = (resized.width - w) // 2
        top = (resized.height - h) // 2
        out = resized.crop((left, top, left + w, top + h))
    else:
        out = img.resize((w, h), Image.Resampling.LANCZOS) if (w, h) != (src_w, src_h) else img
    buf = io.BytesIO()
    if fmt == "JPEG":
        out.save(buf, "JPEG", quality=85, optimize=True)
    else:
        out.save(buf, "PNG", optimize=True)
    return buf.getvalue(), "image/jpeg" if fmt == "JPEG" else "image/png", out.width, out.height
