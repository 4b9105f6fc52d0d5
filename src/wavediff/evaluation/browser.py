"""Open a listening page in headless Chromium, check its players and images, take a screenshot.

Needs Chromium (Debian's ``chromium`` package, or any Chrome found on ``PATH``; or pass
its path) and the ``playwright`` Python package, which drives it without downloading a
browser of its own.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from wavediff.errors import WavediffError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Flags for a closed network and a root user (as in CI containers): no sandbox, no GPU, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

# Loads each <audio> one after another (browsers cap simultaneous media loads) and reports
# readyState / duration / error per element, and natural size per <img>.
_CHECK_JS = """
async () => {
  const players = [];
  for (const a of Array.from(document.querySelectorAll('audio'))) {
    if (a.readyState < 1 && !a.error) {
      await new Promise((resolve) => {
        const done = () => resolve();
        a.addEventListener('loadedmetadata', done, {once: true});
        a.addEventListener('error', done, {once: true});
        setTimeout(done, 10000);
        a.load();
      });
    }
    players.push({src: a.getAttribute('src'), ready: a.readyState, duration: a.duration,
                  error: a.error ? a.error.code : null});
  }
  const images = Array.from(document.images).map((i) => ({src: i.getAttribute('src'), complete: i.complete,
                                                            width: i.naturalWidth, height: i.naturalHeight}));
  return {players, images};
}
"""


@dataclass
class PageCheck:
    """What the browser saw: per player and per image whether it loaded."""

    players: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken_players(self) -> list[str]:
        return [p["src"] for p in self.players
                if p["error"] is not None or p["ready"] < 1 or not (p["duration"] or 0) > 0]

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["complete"] or i["width"] < 1 or i["height"] < 1]

    @property
    def ok(self) -> bool:
        return bool(self.players or self.images) and not self.broken_players and not self.broken_images


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium/Chrome executable: ``explicit``, ``$WAVEDIFF_CHROMIUM``, or the first on ``PATH``."""
    for candidate in (explicit, os.environ.get("WAVEDIFF_CHROMIUM")):
        if candidate:
            return candidate if Path(candidate).is_file() else shutil.which(candidate)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_page(page_path: str | Path, screenshot: str | Path | None = None, *, chromium: str | None = None,
               width: int = 1400, height: int = 2200, timeout_s: float = 120.0) -> PageCheck:
    """Load ``page_path`` (a local HTML file) headless; report every player and image; optionally screenshot.

    The screenshot is of the top ``width × height`` pixels (the score tables and the first samples).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise WavediffError("checking a page needs the 'playwright' package: pip install 'wavediff[eval]'") from None
    executable = find_chromium(chromium)
    if executable is None:
        raise WavediffError(
            f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH and $WAVEDIFF_CHROMIUM); "
            "install it, e.g. apt-get install chromium"
        )
    page_path = Path(page_path).resolve()
    if not page_path.is_file():
        raise WavediffError(f"page not found: {str(page_path)!r}")
    result = PageCheck()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                                     timeout=timeout_s * 1000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_s * 1000)
            page.on("console", lambda msg: result.console_errors.append(msg.text) if msg.type == "error" else None)
            page.goto(page_path.as_uri(), wait_until="load")
            found = page.evaluate(_CHECK_JS)
            result.players, result.images = found["players"], found["images"]
            if screenshot is not None:
                page.evaluate("window.scrollTo(0, 0)")
                result.screenshot = Path(screenshot)
                result.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(result.screenshot), full_page=False)
        finally:
            browser.close()
    return result
