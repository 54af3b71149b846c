"""Visitors' uploads: taken only as a safe type whose bytes are what the type says, and
served so that no browser runs them (docs/channels/widget.md, "Files").

An upload's declared type must be one of the widget's ``file_types`` (a subset of
``SAFE_UPLOAD_TYPES``: images, PDF, plain text) and its first bytes must match that type;
plain text must be UTF-8. It is served with that type, ``nosniff``, a sandboxing policy,
and ``Content-Disposition`` (``inline`` for images, ``attachment`` otherwise) carrying the
name percent-encoded, so a name can neither break the header nor become markup.
"""

from __future__ import annotations

import unicodedata
import urllib.parse
from dataclasses import replace

from channels.widget.config import WidgetCredentials
from channels.widget.log import StoredFile
from engine.errors import BadRequestError, UnsupportedMediaTypeError
from engine.models import Content, FileContent, FileRef, ImageContent

MAX_NAME_CHARS = 200
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}


def checked_upload(
    data: bytes, content_type: str, name: str, settings: WidgetCredentials, owner: StoredFile
) -> StoredFile:
    """The upload to store, or the error that says why it is refused."""
    if not data:
        raise BadRequestError("the upload is empty")
    if len(data) > settings.max_file_bytes:
        raise BadRequestError(f"the upload is over {settings.max_file_bytes} bytes")
    if content_type not in settings.file_types:
        raise UnsupportedMediaTypeError(
            f"files of type {content_type!r} are not taken; taken: {list(settings.file_types)}"
        )
    if not _bytes_match(data, content_type):
        raise BadRequestError(f"the file's content is not {content_type}")
    return replace(owner, name=safe_name(name), mime_type=content_type, data=data)


def _bytes_match(data: bytes, content_type: str) -> bool:
    if content_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if content_type == "text/plain":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return data.startswith(_SIGNATURES[content_type])


def safe_name(name: str) -> str:
    """The name as shown: no path, no control characters, not empty, not too long."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:MAX_NAME_CHARS] or "file"


def download_headers(stored: StoredFile) -> dict[str, str]:
    disposition = "inline" if stored.mime_type.startswith("image/") else "attachment"
    quoted = urllib.parse.quote(stored.name, safe="")
    return {
        "Content-Type": stored.mime_type,
        "Content-Disposition": f"{disposition}; filename=\"file\"; filename*=UTF-8''{quoted}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=86400",
    }


def file_content(file_id: str, stored: StoredFile, url: str) -> Content:
    """The upload as a message's content; images are shown inline by the widget."""
    ref = FileRef(
        file_id=file_id,
        url=url,
        name=stored.name,
        mime_type=stored.mime_type,
        size_bytes=len(stored.data),
    )
    if stored.mime_type.startswith("image/"):
        return ImageContent(file=ref)
    return FileContent(file=ref)
