"""Where plugins come from: folders (a `manifest.toml` beside the code) in the plugins
directory, and installed Python packages that declare a `parley.plugins` entry point (whose
value names the package; its folder holds the manifest). The server never imports plugin
code: it only reads manifests."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from parley_plugin.manifest import Manifest, ManifestError, load_manifest

log = logging.getLogger("parley.plugins")
ENTRY_POINT_GROUP = "parley.plugins"


@dataclass(frozen=True)
class Source:
    manifest: Manifest
    code_dir: Path
    origin: str  # "folder" | "entry_point"

    @property
    def revision(self) -> tuple[int, int]:
        """Changes whenever the code folder is replaced (an install renames a fresh copy into
        place), so a reinstalled plugin is restarted even when its version stayed the same."""
        st = self.code_dir.stat()
        return st.st_ino, st.st_mtime_ns


def _entry_point_sources() -> list[Source]:
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":", 1)[0]
        try:
            spec = importlib.util.find_spec(module)  # finds the package without importing it
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            log.warning("plugin entry point %s: %s is not a package folder", ep.name, module)
            continue
        try:
            out.append(Source(load_manifest(Path(locations[0])), Path(locations[0]), "entry_point"))
        except ManifestError as e:
            log.warning("plugin entry point %s: %s", ep.name, e)
    return out


class Registry:
    def __init__(self, plugins_dir: Path) -> None:
        self.plugins_dir = plugins_dir

    def discover(self) -> dict[str, Source]:
        found: dict[str, Source] = {s.manifest.name: s for s in _entry_point_sources()}
        if self.plugins_dir.is_dir():
            for folder in sorted(self.plugins_dir.iterdir()):
                if not (folder / "manifest.toml").is_file():
                    continue
                try:
                    m = load_manifest(folder)
                except ManifestError as e:
                    log.warning("plugin folder %s: %s", folder, e)
                    continue
                found[m.name] = Source(m, folder.resolve(), "folder")
        return found

    def get(self, name: str) -> Source | None:
        return self.discover().get(name)

    def install_folder(self, folder: Path) -> Source:
        """Copy a plugin folder into the plugins directory (replacing an older copy)."""
        m = load_manifest(folder)
        dest = self.plugins_dir / m.name
        if dest.resolve() != folder.resolve():
            self.plugins_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.plugins_dir / f".{m.name}.installing"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        return Source(load_manifest(dest), dest.resolve(), "folder")
