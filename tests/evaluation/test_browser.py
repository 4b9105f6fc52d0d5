"""wavediff.evaluation.browser: the listening page loads every player and image in Chromium, and its
check notices a missing file."""
from __future__ import annotations

import shutil

import pytest


pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("parselmouth")


def _chromium_or_skip() -> None:
    pytest.importorskip("playwright", reason="the page test needs the playwright package (pip install .[eval])")
    from wavediff.evaluation.browser import find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium on PATH (scripts/test.sh installs Debian's chromium where apt-get can run)")


def test_listening_page_loads_every_player_and_image_in_chromium(report_dir):
    _chromium_or_skip()
    from wavediff.evaluation.browser import check_page

    out, report = report_dir
    check = check_page(out / "index.html", out / "screenshot.png")
    expected = len(report.utterances) * (len(report.systems) + 1)
    assert len(check.players) == expected
    assert len(check.images) == expected + 2  # the spectrograms and the two plots
    assert check.broken_players == [] and check.broken_images == []
    assert all(p["duration"] == pytest.approx(next(u.duration_s for u in report.utterances if u.id in p["src"]),
                                              abs=0.01) for p in check.players)
    assert check.ok and (out / "screenshot.png").stat().st_size > 10_000


def test_page_check_notices_a_missing_file(report_dir, tmp_path):
    _chromium_or_skip()
    from wavediff.evaluation.browser import check_page

    out, _ = report_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim_audio = next((copy / "audio" / "recording").glob("*.wav"))
    victim_audio.unlink()
    next((copy / "spectrograms" / "recording").glob("*.png")).write_bytes(b"not a png")
    check = check_page(copy / "index.html")
    assert len(check.broken_players) == 1 and victim_audio.name in check.broken_players[0]
    assert len(check.broken_images) == 1 and not check.ok
