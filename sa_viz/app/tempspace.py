"""The app's own temporary space: rendered pictures and exports, in one folder, bounded in size,
removed when the process ends. Nothing is ever written outside it (gradio copies what it serves
into its own cache, which the app also lets gradio clean).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from sa_viz.outputs import files

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")  # what a file's name keeps of a picture's name


class TempSpace:
    def __init__(self, keep: int = 512) -> None:
        self._owner = tempfile.TemporaryDirectory(prefix="sa-viz-")  # deleted at exit
        self.root = Path(self._owner.name)
        self.keep = keep
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, None] = OrderedDict()  # least recently handed out first

    def picture(self, picture: np.ndarray, *, lossless: bool = False, name: str = "") -> str:
        """Write an RGB picture as JPEG (or PNG if `lossless`); return its path. `name` (what
        it shows: "cam_resnet50_class281") begins the file's name, which a download keeps
        (before: a hash only, issue 27)."""
        blob, suffix = files.page_picture_bytes(picture, lossless=lossless)
        digest = hashlib.sha1(blob).hexdigest()
        stem = f"{_SLUG.sub('_', name)[:80]}_{digest[:12]}" if name else digest
        path = self.root / f"{stem}{suffix}"
        with self._lock:
            if path in self._entries:  # the same picture again: it is served again, keep it
                self._entries.move_to_end(path)
            else:
                files.write_bytes(path, blob)
                self._entries[path] = None
                self._prune()
        return str(path)

    def folder(self) -> Path:
        """A new empty folder inside the space (for an export)."""
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            self._entries[folder] = None
            self._prune()
        return folder

    def touch(self, path: Path) -> bool:
        """Mark a folder handed out here as used now (a study being browsed is kept while
        newer pictures come); False where it is gone already."""
        with self._lock:
            if path not in self._entries:
                return False
            self._entries.move_to_end(path)
            return True

    def discard(self, path: Path) -> None:
        """Remove a folder (or file) handed out here, at once."""
        with self._lock:
            self._entries.pop(path, None)
            _remove(path)

    def _prune(self) -> None:
        while len(self._entries) > self.keep:
            old, _ = self._entries.popitem(last=False)
            _remove(old)

    def cleanup(self) -> None:
        self._owner.cleanup()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
