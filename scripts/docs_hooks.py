"""MkDocs hooks (mkdocs.yml `hooks:`): the repository's README.md and CHANGELOG.md become the
site's `quickstart.md` and `changelog.md` pages, and links to them are rewritten.

The pages under docs/ link to `../README.md` and `../CHANGELOG.md` so that they work where
people read them on a forge; those files sit outside docs/, where MkDocs cannot reach them.
Rules: the Markdown files in the repository are never changed; a link is rewritten only when
it resolves, from the page's own place in the repository, to one of those two files (or, in
them, to a page under docs/), so every other link is still checked by `mkdocs build --strict`.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# Repository file -> the page that stands for it on the site.
PAGES = {"README.md": "quickstart.md", "CHANGELOG.md": "changelog.md"}
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s#]+)(#[^)\s]*)?\)")


def on_files(files: Files, config: Any) -> Files:
    for source, page in PAGES.items():
        files.append(File.generated(config, page, content=(ROOT / source).read_text()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Links rewritten as if the page still sat where its source does in the repository."""
    source = page.file.src_uri
    inverse = {page_name: repo_name for repo_name, page_name in PAGES.items()}
    in_repository = inverse.get(source, f"docs/{source}")  # where the text was written
    here = posixpath.dirname(in_repository)

    def rewrite(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(here, match.group(1)))
        if target in PAGES:
            site_target = PAGES[target]
        elif target.startswith("docs/"):
            site_target = target[len("docs/") :]
        else:
            return match.group(0)  # left for MkDocs to check (and refuse if broken)
        relative = posixpath.relpath(site_target, posixpath.dirname(source) or ".")
        return f"]({relative}{match.group(2) or ''})"

    return LINK.sub(rewrite, markdown)
