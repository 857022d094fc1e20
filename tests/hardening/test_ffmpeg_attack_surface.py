"""ffmpeg as an attack surface: playlists in disguise, option-like names, output paths.

A playlist (HLS, ffconcat, DASH, SDP) renamed to .mp4/.ts/.mkv must not make
ffmpeg open another local file or any URL: a local HTTP server started here
records every request, and a "secret" video elsewhere in tmp must never show
up as stills. A positive control proves the same files *do* reach the server
when ffmpeg is run without our safeguards, so the test is not vacuous.
"""

from __future__ import annotations

import filecmp
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from napari_video_extract.core.ffmpeg import ffmpeg_exe

from ._media import check_output_folder, make_video, run_cli

IMAGE_SUFFIXES = (".jpg", ".png", ".webp")


@pytest.fixture
def server(tmp_path):
    """A local HTTP server that serves a valid video for any path and logs requests."""
    payload = make_video(tmp_path / "served.ts", seconds=1.0, codec="mpeg2video")
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            data = payload.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def _hls(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n"


def _playlists(folder: Path, secret_video: Path, secret_text: Path, url: str) -> list[Path]:
    """Playlist-style files in ``folder``; ``folder/sibling.ts`` is a secret video too."""
    files = {
        "hls_local.mp4": _hls(str(secret_video)),
        "hls_local.m3u8": _hls(str(secret_video)),
        "hls_file_url.mkv": _hls(f"file:{secret_video}"),
        "hls_sibling.ts": _hls("sibling.ts"),
        "hls_url.ts": _hls(f"{url}/hls.ts"),
        "hls_url.m3u8": _hls(f"{url}/hls.ts"),
        "ffconcat_sibling.mp4": "ffconcat version 1.0\nfile 'sibling.ts'\n",
        "ffconcat_local.mkv": f"ffconcat version 1.0\nfile '{secret_video}'\n",
        "ffconcat_url.ts": f"ffconcat version 1.0\nfile '{url}/concat.ts'\n",
        "ffconcat_text.ffconcat": f"ffconcat version 1.0\nfile '{secret_text}'\n",
        "dash.mp4": '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
        'type="static" mediaPresentationDuration="PT2S"><Period><AdaptationSet '
        f'mimeType="video/mp2t"><Representation id="1" bandwidth="1000"><BaseURL>{url}/dash.ts'
        "</BaseURL></Representation></AdaptationSet></Period></MPD>\n",
        "sdp.mp4": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
        "m=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n",
    }
    paths = []
    for name, text in files.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths


@pytest.fixture
def attack(tmp_path, server):
    url, _ = server
    private = tmp_path / "private"
    private.mkdir()
    secret_video = make_video(private / "secret.ts", seconds=2.0, codec="mpeg2video")
    secret_text = private / "secret.txt"
    secret_text.write_text("password=hunter2\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copyfile(secret_video, inbox / "sibling.ts")  # present, but never an input
    return _playlists(inbox, secret_video, secret_text, url)


def test_disguised_playlists_open_nothing(tmp_path, server, attack):
    _, requests = server
    out = tmp_path / "out"
    run = run_cli("interval", *attack, "--every", "0.5", "-o", out)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 1
    for p in attack:  # each refused, with a one-line error naming it
        lines = [ln for ln in run.error_lines if f": error: {p}: " in ln]
        assert len(lines) == 1, (p.name, run.stderr)
    assert len(run.error_lines) == len(attack)
    assert requests == [], f"ffmpeg fetched URLs: {requests}"
    images = [p for p in out.rglob("*") if p.suffix in IMAGE_SUFFIXES] if out.exists() else []
    assert images == [], f"stills written from a playlist: {images}"
    assert "hunter2" not in run.stdout + run.stderr


def _plain_ffmpeg_frames(path: Path) -> int:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", path]
    proc = subprocess.run([*cmd, "-f", "framecrc", "-"], timeout=60, capture_output=True)
    return sum(1 for line in proc.stdout.splitlines() if line.startswith(b"0,"))


def test_control_plain_ffmpeg_follows_the_same_files(attack):
    """Run without our safeguards, ffmpeg reads the other video through these
    files (50 frames of the 2 s secret), so the test above is not vacuous."""
    by_name = {p.name: p for p in attack}
    assert _plain_ffmpeg_frames(by_name["ffconcat_sibling.mp4"]) == 50
    assert _plain_ffmpeg_frames(by_name["hls_local.m3u8"]) == 50


OPTION_LIKE_NAMES = ["-i", "-y.mp4", "http:x.mp4", "concat:a|b.mp4", "file:x.mp4", "pipe:0.mp4"]


def test_option_and_protocol_like_names_are_plain_files(tmp_path, server, clip_dir):
    _, requests = server
    work = tmp_path / "work"
    work.mkdir()
    good = clip_dir / "good.mp4"
    for name in OPTION_LIKE_NAMES:
        shutil.copyfile(good, work / name)
    # Decoys the names could be misread as: "a" and "b" for concat:a|b, "x.mp4".
    decoy = make_video(tmp_path / "decoy.mp4", seconds=1.0, size="32x32")
    for name in ("a", "b", "x.mp4", "0.mp4"):
        shutil.copyfile(decoy, work / name)
    reference = run_cli(
        "interval", good, "--every", "0.5", "--format", "png", "-q", "-o", tmp_path / "ref"
    )
    assert reference.returncode == 0, reference.stderr
    ref_dir = tmp_path / "ref" / "good"
    ref_rows = check_output_folder(ref_dir)

    # Relative names after "--", run from the folder: the hardest case.
    run = run_cli(
        "interval",
        "--every",
        "0.5",
        "--format",
        "png",
        "-o",
        "out",
        "--",
        *OPTION_LIKE_NAMES,
        cwd=work,
    )
    assert run.returncode == 0, run.stderr
    assert requests == []
    out_dirs = sorted(p for p in (work / "out").iterdir() if p.is_dir())
    assert len(out_dirs) == len(OPTION_LIKE_NAMES), out_dirs
    for folder in out_dirs:
        rows = check_output_folder(folder)
        assert [(r["frame"], r["time"]) for r in rows] == [
            (r["frame"], r["time"]) for r in ref_rows
        ]
        for row, ref in zip(rows, ref_rows, strict=True):
            # Same pixels as the real file (64x48), not the 32x32 decoys.
            assert filecmp.cmp(folder / row["file"], ref_dir / ref["file"], shallow=False)
    # Nothing was created outside "out".
    names = [*OPTION_LIKE_NAMES, "a", "b", "x.mp4", "0.mp4", "out"]
    assert sorted(p.name for p in work.iterdir()) == sorted(names)


@pytest.mark.parametrize(
    "template",
    [
        "../x_{frame}",
        "/abs/x_{frame}",
        "{stem}/../../x_{frame}",
        ".hidden_{frame}",
        "..",
        "sub/{frame}",
        "x\\..\\{frame}",
    ],
)
def test_name_template_cannot_leave_the_output_folder(tmp_path, clip_dir, template):
    before = sorted(tmp_path.rglob("*"))
    run = run_cli(
        "interval",
        clip_dir / "good.mp4",
        "--every",
        "1",
        "--name-template",
        template,
        "-o",
        tmp_path / "out",
    )
    assert run.returncode == 2, (template, run.stderr)
    assert "--name-template" in run.stderr
    assert sorted(tmp_path.rglob("*")) == before  # nothing written anywhere
    assert not Path("/abs").exists()


def test_video_stem_cannot_leave_the_output_folder(tmp_path, clip_dir):
    """Stems '.' and '..' ('..mp4', '...mp4') must not map to --out or its parent."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("..mp4", "...mp4"):
        shutil.copyfile(clip_dir / "good.mp4", work / name)
    run = run_cli(
        "interval",
        "--every",
        "1",
        "--name-template",
        "img_{frame}",
        "-o",
        "out",
        "--",
        "..mp4",
        "...mp4",
        cwd=work,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in work.iterdir()) == ["...mp4", "..mp4", "out"]
    folders = [p for p in (work / "out").iterdir()]
    assert len(folders) == 2 and all(p.is_dir() for p in folders)
    for folder in folders:
        assert len(check_output_folder(folder)) == 2
