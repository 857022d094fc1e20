"""Matroska's track list, and which track is ffmpeg's video stream N.

ffmpeg's matroska demuxer makes one stream of each ``TrackEntry`` it keeps,
in order, so its stream index is the entry's position only if it keeps them
all; :func:`video_track_number` gives a track's number only when that holds
and the track is a video track whose block times ffmpeg reads as
presentation times (:data:`CODEC_IDS`).
"""

from __future__ import annotations

from napari_video_extract.core.ebml import Unusual, children, limited, uint

__all__ = ["CODEC_IDS", "read_tracks", "video_track_number"]

_TRACK_ENTRY = 0xAE
_TRACK_NUMBER = 0xD7
_TRACK_TYPE = 0x83
_CODEC_ID = 0x86
_DEFAULT_DURATION = 0x23E383
_TRACK_TIMESTAMP_SCALE = 0x23314F
_CONTENT_ENCODINGS = 0x6D80
_CODEC_DELAY = 0x56AA
#: ``CodecID`` of each codec the reader knows ffmpeg maps plainly (block time
#: is the frame's presentation time). ``V_MS/VFW/FOURCC`` is absent on
#: purpose: ffmpeg puts its block times into dts, not pts.
CODEC_IDS = {
    b"V_MPEG4/ISO/AVC": "h264",
    b"V_MPEGH/ISO/HEVC": "hevc",
    b"V_VP8": "vp8",
    b"V_VP9": "vp9",
    b"V_AV1": "av1",
    b"V_MPEG4/ISO/ASP": "mpeg4",
    b"V_MPEG4/ISO/SP": "mpeg4",
    b"V_MPEG4/ISO/AP": "mpeg4",
    b"V_MPEG1": "mpeg1video",
    b"V_MPEG2": "mpeg2video",
    b"V_MJPEG": "mjpeg",
    b"V_THEORA": "theora",
    b"V_PRORES": "prores",
    b"V_FFV1": "ffv1",
}
#: First letter of the CodecID that ffmpeg's matroskadec requires for each
#: track type; a track that fails it is skipped ("Inconsistent track type"),
#: which would shift the stream indices after it.
_CODEC_LETTERS = {1: b"V", 2: b"A", 0x11: b"SD"}


def read_tracks(b, start: int, end: int) -> list[dict]:
    """The ``TrackEntry`` elements of the ``Tracks`` payload in ``b[start:end]``, in order.

    Each is a dict: ``number``, ``type``, ``codec`` (the ``CodecID``),
    ``default_duration`` (ns) and ``unusual`` (timing or encoding of its own).
    """
    tracks = []
    for eid, pos, size in children(b, start, end):
        if eid != _TRACK_ENTRY:
            continue
        track = {
            "number": None,
            "type": None,
            "codec": b"",
            "default_duration": 0,
            "unusual": False,
        }
        for cid, cpos, csize in children(b, pos, pos + size):
            if cid == _TRACK_NUMBER:
                track["number"] = uint(b, cpos, csize)
            elif cid == _TRACK_TYPE:
                track["type"] = uint(b, cpos, csize)
            elif cid == _CODEC_ID:
                track["codec"] = bytes(b[cpos : cpos + csize]).rstrip(b"\0")
            elif cid == _DEFAULT_DURATION:
                track["default_duration"] = limited(uint(b, cpos, csize))
            elif cid in (_TRACK_TIMESTAMP_SCALE, _CONTENT_ENCODINGS, _CODEC_DELAY):
                track["unusual"] = True  # its own timing or encoding: ffmpeg's business
        tracks.append(track)
    return tracks


def video_track_number(tracks: list[dict], stream: int, codec: str | None) -> int | None:
    """The track number of ffmpeg's stream ``stream`` if it is a plain video track.

    Raises :class:`~.ebml.Unusual` if ffmpeg would skip a track (so that its stream
    indices are not the ``TrackEntry`` order); None if that stream is not a
    video track this reader can time.
    """
    for t in tracks:
        letters = _CODEC_LETTERS.get(t["type"])
        if letters is None or not t["codec"] or t["codec"][:1] not in letters:
            raise Unusual("a track ffmpeg would skip")
        if not t["codec"].isascii() or t["number"] is None or t["number"] <= 0:
            raise Unusual("a track ffmpeg may handle differently")
    if len({t["number"] for t in tracks}) != len(tracks):
        raise Unusual("two tracks with one number")
    if not 0 <= stream < len(tracks):
        return None
    track = tracks[stream]
    if track["type"] != 1 or track["unusual"]:
        return None
    known = CODEC_IDS.get(track["codec"])
    if known is None or (codec is not None and known != codec):
        return None  # V_MS/VFW/FOURCC, V_QUICKTIME, ... or not the probed stream
    return track["number"]
