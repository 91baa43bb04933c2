"""Thumbnail sizing (pure) and rendering (Pillow)."""

from __future__ import annotations

import io

# The sizes the spec suggests servers pre-generate: (width, height, method).
THUMBNAIL_SIZES = [(32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
                   (800, 600, "scale")]
THUMBNAILABLE = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"}
MAX_SOURCE_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 40_000_000


def choose_size(width: int, height: int, method: str) -> tuple[int, int, str]:
    """The smallest configured size at least as large as asked (the largest if none is)."""
    same = [s for s in THUMBNAIL_SIZES if s[2] == method] or THUMBNAIL_SIZES
    for s in same:
        if s[0] >= width and s[1] >= height:
            return s
    return same[-1]


def render(data: bytes, width: int, height: int, method: str) -> tuple[bytes, str, int, int]:
    """Returns (bytes, content type, actual width, actual height); never upscales."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        src_w, src_h = img.size
        fmt = "PNG" if img.mode in ("RGBA", "LA", "P") else "JPEG"
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if fmt == "PNG" else "RGB")
        if method == "crop":
            w, h = min(width, src_w), min(height, src_h)
            scale = max(w / src_w, h / src_h)
            resized = img.resize((max(1, round(src_w * scale)), max(1, round(src_h * scale))), Image.LANCZOS)
            left = (resized.width - w) // 2
            top = (resized.height - h) // 2
            out = resized.crop((left, top, left + w, top + h))
        else:
            scale = min(width / src_w, height / src_h, 1.0)
            out = img.resize((max(1, round(src_w * scale)), max(1, round(src_h * scale))), Image.LANCZOS)
        buf = io.BytesIO()
        out.save(buf, fmt, quality=85) if fmt == "JPEG" else out.save(buf, fmt)
        return buf.getvalue(), "image/jpeg" if fmt == "JPEG" else "image/png", out.width, out.height
