"""Real media files for the video-check tests, made with PyAV: a good MP4 and the bad cases an
operator meets (a text file or a PNG named .mp4, an empty file, an audio-only .mp4, a raw H.264
stream with no container, a copy cut off).

`make_mp4` is the demo-video generator's own (tools/make_demo_videos.py), so the tests and the demo
campaign use the same encoder settings.
"""
from __future__ import annotations

import importlib.util
import math
import os
import struct
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("make_demo_videos",
                                               REPO / "tools" / "make_demo_videos.py")
make_demo_videos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_demo_videos)

make_mp4 = make_demo_videos.make_mp4            # make_mp4(path, seconds=1.0, colour=(r, g, b))
DEMO_VIDEOS = make_demo_videos.DEMO_VIDEOS
DEMO_FILES = make_demo_videos.DEMO_FILES


def make_noisy_mp4(path: Path, frames: int = 8, width: int = 320, height: int = 240,
                   *, faststart: bool = True) -> Path:
    """An MP4 (MPEG-4 Part 2) of random pixels: big for its length, for cuts deep inside the
    frames and for timing. About 60 KB a frame at 320x240."""
    with av.open(str(path), "w", format="mp4",
                 container_options={"movflags": "+faststart"} if faststart else {}) as out:
        stream = out.add_stream("mpeg4", rate=4, options={"qscale": "2"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts, frame.time_base = i, Fraction(1, 4)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_raw_h264(path: Path, frames: int = 8) -> Path:
    """A raw H.264 stream with no container around it (as some recorders dump): frames decode,
    but nothing says how long it is."""
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 112, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(make_demo_videos._frame(i, frames, (90, 90, 90), "7")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4/.m4a holding only AAC audio (a 440 Hz tone), no video stream."""
    rate, chunk = 44100, 1024
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, int(seconds * rate), chunk):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=chunk)
            samples = [0.3 * math.sin(2 * math.pi * 440 * (start + i) / rate) for i in range(chunk)]
            frame.planes[0].update(struct.pack(f"<{chunk}f", *samples).ljust(
                frame.planes[0].buffer_size, b"\0"))
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_png(path: Path, width: int = 32, height: int = 32) -> Path:
    """A real PNG image (written at `path` whatever its extension, e.g. a photo renamed .mp4)."""
    frame = av.VideoFrame(width, height, "rgb24")
    frame.planes[0].update(bytes([200, 40, 40]) * (frame.planes[0].buffer_size // 3))
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "rgb24"
    encoder.time_base = Fraction(1, 1)
    data = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
    Path(path).write_bytes(data)
    return Path(path)


def cut(source: Path, dest: Path, fraction: float) -> Path:
    """A copy of `source` with only its first `fraction` of bytes: a copy or download cut off."""
    data = Path(source).read_bytes()
    Path(dest).write_bytes(data[:int(len(data) * fraction)])
    return Path(dest)


def mp4_boxes(path: Path) -> list[tuple[str, int, int]]:
    """The top-level boxes of an MP4 as (type, offset, size), to say where a cut falls."""
    data, boxes, at = Path(path).read_bytes(), [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        boxes.append((data[at + 4:at + 8].decode("latin-1"), at, size))
        if size < 8:
            break
        at += size
    return boxes
