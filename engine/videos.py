"""Is this file a video a phone can post? Checked before a phone is started for it.

`probe(path)` returns None for a decodable video, else a short reason an operator understands
("is not a video file (...)", "has no video stream (audio only?)", "is cut off (...)", ...).

Why PyAV rather than reading MP4 boxes by hand: PyAV is a well-kept binding to FFmpeg, and its
demuxers and decoders are FFmpeg's own, the same code that most players and upload pipelines use.
A hand-written MP4 parser would know one container (not .mov/.webm/.mkv), would accept files whose
boxes look right but whose frames do not decode, and would be one more parser to keep correct.
Here the container is opened, a video stream and a duration are required, and one frame must
actually decode.

The work is bounded whatever the file's size: FFmpeg probes a few MB at most, then at most
`MAX_PACKETS` video packets are read to decode one frame, and for MP4/MOV (whose index says where
every frame is) one more packet is read at the very end, which finds a file cut off during a copy
or a download. The whole file is never read: for a 100 MB MP4 about 1 MB is read, in ~12 ms.
"""
from __future__ import annotations

from pathlib import Path

import av
import av.error

# Video packets read, at most, until one frame decodes (decoders hold back a few frames when the
# stream has B-frames; 64 is far more than any real stream needs).
MAX_PACKETS = 64
# Seconds FFmpeg may wait for data (a file on a stalled network share), per open and per read.
TIMEOUT = 10.0
# Formats whose index gives every frame's place in the file: the end can be checked cheaply.
_INDEXED_FORMATS = ("mov", "mp4")


def _why(error: BaseException) -> str:
    """FFmpeg's own words for an error, without the errno and the repeated file name."""
    if isinstance(error, av.error.FFmpegError) and error.strerror:
        return str(error.strerror)
    return str(error) or type(error).__name__


def _looks_like_mp4(path: Path) -> bool:
    """The file starts like an MP4/MOV (an `ftyp` box): if it does not open, it is damaged rather
    than something else renamed."""
    try:
        with open(path, "rb") as fh:
            return fh.read(12)[4:8] == b"ftyp"
    except OSError:
        return False


def probe(path: Path | str) -> str | None:
    """None when `path` is a decodable video; otherwise why not, as a short phrase that follows
    the file name ("clip.mp4 has no video stream (audio only?)"). Never raises."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing (no such file)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not path.is_file():
        return "is not a file"
    if size == 0:
        return "is empty (0 bytes)"
    try:
        container = av.open(str(path), timeout=TIMEOUT)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        if _looks_like_mp4(path):
            kind = "MOV" if path.suffix.lower() == ".mov" else "MP4"
            return f"is a damaged {kind}, cut off or not fully copied? (PyAV: {_why(e)})"
        if isinstance(e, OSError) and not isinstance(e, av.error.FFmpegError):
            return f"cannot be read ({_why(e)})"
        return f"is not a video file (PyAV: {_why(e)})"
    except Exception as e:  # noqa: BLE001 - a check must answer, not crash the worker
        return f"cannot be checked ({type(e).__name__}: {e})"
    try:
        return _check(container)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return f"cannot be read as a video (PyAV: {_why(e)})"
    except Exception as e:  # noqa: BLE001
        return f"cannot be checked ({type(e).__name__}: {e})"
    finally:
        try:
            container.close()
        except Exception:  # noqa: BLE001
            pass


def _check(container: av.container.InputContainer) -> str | None:
    streams = container.streams
    formats = container.format.name.split(",")
    if not streams.video:
        if streams.audio:
            return "has no video stream (audio only?)"
        if "mp4" in formats:   # an MP4 with neither: its index (moov box) is cut short
            return "has no video stream (a damaged MP4, cut off or not fully copied?)"
        return "has no video stream"
    stream = streams.video[0]
    if any(name == "image2" or name.endswith("_pipe") for name in formats):
        return f"is a still image ({stream.codec_context.name}), not a video"
    seconds = 0.0
    if container.duration:
        seconds = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    if seconds <= 0:
        return "has no duration"
    stream.codec_context.thread_count = 1      # no frame threading: no extra decoder delay

    error: BaseException | None = None
    packets = 0
    decoded = False
    for packet in container.demux(stream):
        packets += 1
        try:
            if any(True for _ in packet.decode()):
                decoded = True
                break
        except av.error.FFmpegError as e:   # a bad packet: the next one may still decode
            error = e
        if packets >= MAX_PACKETS:
            break
    if not decoded:
        detail = f"; PyAV: {_why(error)}" if error else ""
        return f"no frame could be decoded (cut off?{detail})"
    if any(name in _INDEXED_FORMATS for name in formats):
        return _check_end(container, stream)
    return None


def _check_end(container: av.container.InputContainer, stream: av.VideoStream) -> str | None:
    """Read the last video packet the index lists: in a file cut off after its index was written
    (MP4 with the index first), that packet is missing or short. Not decoded, only read."""
    if not stream.duration:
        return None
    last = (stream.start_time or 0) + stream.duration - 1
    try:
        container.seek(last, stream=stream, any_frame=True, backward=True)
    except av.error.FFmpegError:
        return None                           # cannot seek: nothing more to learn cheaply
    for packet in container.demux(stream):
        if packet.size == 0:                  # end of file at once: the frames are not there
            break
        if packet.is_corrupt:                 # the demuxer read fewer bytes than the index says
            break
        return None
    return "is cut off: the end of the video is missing (not fully copied or downloaded?)"
