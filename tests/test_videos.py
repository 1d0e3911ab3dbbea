"""The video check run before a phone is started (`engine.videos.probe`), on real files made with
PyAV: good videos pass, and each broken kind an operator meets gets a reason that names it."""
from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from engine.campaigns import load_campaign
from engine.videos import probe
from videos import (DEMO_FILES, DEMO_VIDEOS, REPO, cut, make_audio_only, make_mp4,
                    make_noisy_mp4, make_png, make_raw_h264, mp4_boxes)


def reason(path: Path) -> str:
    """probe's reason for a file that must fail: a short one-line string."""
    why = probe(path)
    assert isinstance(why, str) and why, f"{path.name} passed the check"
    assert "\n" not in why and len(why) < 160, why
    return why


# --- good videos pass -----------------------------------------------------------------------

@pytest.mark.parametrize("faststart", [False, True], ids=["index-last", "index-first"])
def test_a_real_mp4_passes(tmp_path, faststart):
    path = make_mp4(tmp_path / "ok.mp4", seconds=1.0, colour=(200, 40, 40), faststart=faststart)
    assert [b[0] for b in mp4_boxes(path)][:1] == ["ftyp"]
    assert probe(path) is None
    assert probe(str(path)) is None                  # a str path too


def test_a_one_frame_video_passes(tmp_path):
    """The decoder holds frames back; the one frame comes out only when it is flushed."""
    assert probe(make_mp4(tmp_path / "one.mp4", seconds=0.25)) is None


def test_a_big_video_passes_quickly_without_reading_it_all(tmp_path):
    path = make_noisy_mp4(tmp_path / "big.mp4", frames=60)          # ~2.3 MB
    size = path.stat().st_size
    assert size > 2_000_000
    io = Path("/proc/self/io")
    before = _bytes_read(io)
    started = time.perf_counter()
    assert probe(path) is None
    assert time.perf_counter() - started < 2.0
    if before is not None:
        assert _bytes_read(io) - before < size / 4, "probe read most of the file"


def _bytes_read(io: Path) -> int | None:
    try:
        return int(next(line for line in io.read_text().splitlines()
                        if line.startswith("rchar:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None


def test_the_demo_folder_holds_exactly_the_generated_videos():
    on_disk = sorted(p.relative_to(DEMO_VIDEOS).as_posix() for p in DEMO_VIDEOS.rglob("*.mp4"))
    assert on_disk == sorted(DEMO_FILES)
    captioned = {v.filename for v in load_campaign(REPO / "campaigns" / "demo").videos}
    assert captioned <= {Path(name).name for name in DEMO_FILES}


@pytest.mark.parametrize("name", DEMO_FILES)
def test_every_demo_video_passes(name):
    path = DEMO_VIDEOS / name
    assert 500 < path.stat().st_size < 10_000, "not a tiny real video: run tools/make_demo_videos.py"
    assert probe(path) is None


def test_demo_videos_differ_from_each_other():
    assert len({(DEMO_VIDEOS / name).read_bytes() for name in DEMO_FILES}) == len(DEMO_FILES)


# --- each broken kind gets a reason that names it -------------------------------------------

def test_a_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("caption ideas: sunrise, harbour, coffee\n")
    why = reason(path)
    assert why.startswith("is not a video file") and "PyAV" in why


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert "empty" in reason(path)


def test_the_old_28_byte_stand_in(tmp_path):
    """The demo's former placeholder: an MP4 header and nothing else."""
    path = tmp_path / "stub.mp4"
    path.write_bytes(bytes.fromhex("00000018667479706d703432") + b"\0" * 16)
    assert "damaged MP4" in reason(path)


def test_an_mp4_cut_to_40_percent_with_its_index_last(tmp_path):
    """The usual layout (index after the frames) cut short by a copy: the index is gone, so
    nothing can be read; the file still starts like an MP4, so it is called damaged, not foreign."""
    good = make_mp4(tmp_path / "good.mp4", seconds=2.0)
    assert [b[0] for b in mp4_boxes(good)][-1] == "moov"
    why = reason(cut(good, tmp_path / "cut.mp4", 0.4))
    assert "damaged MP4" in why and "cut off" in why


def test_an_mp4_cut_inside_its_index(tmp_path):
    good = make_mp4(tmp_path / "good.mp4", seconds=2.0)
    moov_at = dict((b[0], b[1]) for b in mp4_boxes(good))["moov"]
    why = reason(cut(good, tmp_path / "cut.mp4", (moov_at + 100) / good.stat().st_size))
    assert "cut off" in why


def test_an_mp4_cut_inside_its_first_frame_with_its_index_first(tmp_path):
    """Index first (fast start): the index opens fine, but the first frame is not all there."""
    good = make_mp4(tmp_path / "good.mp4", seconds=2.0, faststart=True)
    boxes = dict((b[0], b[1]) for b in mp4_boxes(good))
    assert boxes["moov"] < boxes["mdat"]
    with av.open(str(good)) as container:
        first = next(container.demux(video=0))
        middle = first.pos + first.size // 2
    why = reason(cut(good, tmp_path / "cut.mp4", middle / good.stat().st_size))
    assert why.startswith("no frame could be decoded") and "cut off" in why


def test_a_tiny_mp4_cut_to_40_percent_with_its_index_first(tmp_path):
    """In a 1.3 KB file the index is over half the bytes: 40% cuts into it."""
    good = make_mp4(tmp_path / "good.mp4", seconds=2.0, faststart=True)
    assert "cut off" in reason(cut(good, tmp_path / "cut.mp4", 0.4))


@pytest.mark.parametrize("keep", [0.4, 0.9, 0.99])
def test_an_mp4_whose_end_is_missing(tmp_path, keep):
    """Index first and the first frames intact, only the end lost: the first frame decodes, but
    the last frames the index lists are not in the file."""
    good = make_noisy_mp4(tmp_path / "good.mp4", frames=12)
    assert probe(good) is None
    why = reason(cut(good, tmp_path / "cut.mp4", keep))
    assert why.startswith("is cut off") and "end" in why


def test_audio_only(tmp_path):
    for name in ("song.mp4", "song.m4a"):
        path = make_audio_only(tmp_path / name)
        assert path.stat().st_size > 1000
        assert reason(path) == "has no video stream (audio only?)"


def test_a_png_renamed_mp4(tmp_path):
    path = make_png(tmp_path / "photo.mp4")
    assert path.read_bytes()[:4] == b"\x89PNG"
    why = reason(path)
    assert "still image" in why and "png" in why


def test_a_raw_h264_stream_renamed_mp4(tmp_path):
    """Its frames decode, but without a container nothing says how long it is."""
    path = make_raw_h264(tmp_path / "dump.mp4")
    assert path.read_bytes()[:4] == b"\0\0\0\1"                    # Annex B start code
    assert reason(path) == "has no duration"


def test_a_missing_file_and_a_folder(tmp_path):
    assert "no such file" in reason(tmp_path / "gone.mp4")
    (tmp_path / "folder.mp4").mkdir()
    assert reason(tmp_path / "folder.mp4") == "is not a file"


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20,      # MP4 header, then garbage
    b"\x1aE\xdf\xa3" + b"\xff" * 3000,                         # Matroska magic, then garbage
    b"\x00\x00\x00\x01\x67" + b"\x00" * 500,                   # a broken raw H.264 stream
    bytes(range(256)) * 40,
], ids=["mp4-garbage", "mkv-garbage", "h264-garbage", "noise"])
def test_garbage_never_raises(tmp_path, data):
    path = tmp_path / "x.mp4"
    path.write_bytes(data)
    reason(path)
