"""The ``interval``, ``credits``, ``info`` and ``demo`` commands, end to end.

Most runs go in-process through ``napari_video_extract.cli.main``; a few go
through ``python -m napari_video_extract`` and the installed console script.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import synthetic
from cli_inprocess import run_cli


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s, 25 fps, frame i shows i (H.264 with B-frames)."""
    return synthetic.make_cfr(tmp_path_factory.mktemp("cli_videos") / "clip.mp4")


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli_rot")
    return synthetic.make_rotated(d / "rotated.mp4", d)


def read_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "frames.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def frames_shown(folder: Path) -> list[int]:
    """Decoded index of every still in the folder, in file-name order."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix in (".jpg", ".png", ".webp"):
            with Image.open(p) as im:
                out.append(synthetic.decode_index(np.asarray(im.convert("RGB"))))
    return out


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


# --------------------------------------------------------------------------- help

OPTIONS = {
    "interval": [
        "--every",
        "--start",
        "--end",
        "--out",
        "--recursive",
        "--format",
        "--quality",
        "--name-template",
        "--overwrite",
        "--jobs",
        "--quiet",
    ],
    "credits": [
        "--head",
        "--tail",
        "--every",
        "--out",
        "--recursive",
        "--format",
        "--quality",
        "--name-template",
        "--overwrite",
        "--jobs",
        "--quiet",
    ],
    "info": ["--json", "--recursive"],
    "demo": ["--out", "--quiet"],
}


def test_top_level_help_lists_the_commands(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in OPTIONS:
        assert command in out


def test_in_process_run_leaves_the_environment_alone(clip, tmp_path, capsys, monkeypatch):
    # Only the console script sets OPENBLAS_NUM_THREADS (for its own process):
    # a script or notebook calling main() keeps its environment.
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    before = dict(os.environ)
    code, _, _ = run_cli(["interval", str(clip), "--every", "1", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert sorted(tmp_path.rglob("*.jpg"))
    assert dict(os.environ) == before


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_lists_every_option(command, capsys):
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    for option in OPTIONS[command]:
        assert option in out, f"{command} --help does not mention {option}"


# --------------------------------------------------------------------------- extraction


def test_interval_writes_the_right_stills(clip, tmp_path, capsys):
    code, out, err = run_cli(
        ["interval", clip, "--every", "0.5", "--out", tmp_path, "--format", "png"], capsys
    )
    assert code == 0, err
    folder = tmp_path / "clip"
    assert frames_shown(folder) == [0, 12, 25, 37, 50, 62, 75, 87]
    rows = read_rows(folder)
    assert [int(r["frame"]) for r in rows] == [0, 12, 25, 37, 50, 62, 75, 87]
    assert "8 still(s) written" in out
    assert error_lines(err) == []


def test_interval_time_formats(clip, tmp_path, capsys):
    code, _, err = run_cli(
        [
            "interval",
            clip,
            "--every",
            "0:00:01",
            "--start",
            "00:01.5",
            "--end",
            "3.5",
            "--out",
            tmp_path,
        ],
        capsys,
    )
    assert code == 0, err
    assert [int(r["frame"]) for r in read_rows(tmp_path / "clip")] == [37, 62]


def test_credits_head_and_tail(clip, tmp_path, capsys):
    code, _, err = run_cli(
        ["credits", clip, "--head", "1", "--tail", "0.5", "--every", "0.4", "--out", tmp_path],
        capsys,
    )
    assert code == 0, err
    # head: 0, 0.4, 0.8 s; tail: 3.5, 3.9 s.
    assert frames_shown(tmp_path / "clip") == [0, 10, 20, 87, 97]


def test_credits_video_shorter_than_head(clip, tmp_path, capsys):
    code, _, err = run_cli(["credits", clip, "--head", "60", "--out", tmp_path], capsys)
    assert code == 0, err
    assert frames_shown(tmp_path / "clip") == [0, 25, 50, 75]


def test_rerun_resumes_and_overwrite_redoes(clip, tmp_path, capsys):
    args = ["interval", clip, "--every", "1", "--out", tmp_path]
    assert run_cli(args, capsys)[0] == 0
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    assert "0 still(s) written, 4 already there" in out
    code, out, _ = run_cli([*args, "--overwrite"], capsys)
    assert code == 0 and "4 still(s) written" in out


def test_name_template_option(clip, tmp_path, capsys):
    code, _, err = run_cli(
        ["interval", clip, "--every", "2", "--out", tmp_path, "--name-template", "{frame:04d}"],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "clip").glob("*.jpg")) == ["0000.jpg", "0050.jpg"]


def test_rotated_video_stills_are_upright(rotated, tmp_path, capsys):
    code, _, err = run_cli(["interval", rotated, "--every", "0.4", "--out", tmp_path], capsys)
    assert code == 0, err
    folder = tmp_path / "rotated"
    for p in folder.glob("*.jpg"):
        with Image.open(p) as im:
            assert im.size == (160, 120)
    assert frames_shown(folder) == [0, 10, 20, 30, 40]


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "args",
    [
        ["interval", "{clip}", "--every", "0"],
        ["interval", "{clip}", "--every", "-1"],
        ["interval", "{clip}", "--every", "abc"],
        ["interval", "{clip}"],  # --every is required
        ["interval", "{clip}", "--every", "1", "--start", "3", "--end", "1"],
        ["interval", "{clip}", "--every", "1", "--start", "2", "--end", "2"],
        ["interval", "{clip}", "--every", "1", "--bogus"],
        ["interval", "{clip}", "--every", "1", "--jobs", "0"],
        ["interval", "{clip}", "--every", "1", "--quality", "101"],
        ["interval", "{clip}", "--every", "1", "--format", "gif"],
        ["interval", "{clip}", "--every", "1", "--name-template", "../{frame}"],
        ["interval", "{clip}", "--every", "1", "--name-template", "{bogus}"],
        ["credits", "{clip}"],  # neither --head nor --tail
        ["credits", "{clip}", "--head", "-2"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors_exit_2_and_write_nothing(clip, tmp_path, capsys, args):
    argv = [str(clip) if a == "{clip}" else a for a in args] + (
        ["--out", str(tmp_path / "out")] if args and args[0] != "nonsense" else []
    )
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert "error" in err
    assert not (tmp_path / "out").exists()


def test_start_past_the_end_of_the_video_fails_that_video(clip, tmp_path, capsys):
    code, _, err = run_cli(["interval", clip, "--every", "1", "--start", "9"], capsys)
    assert code == 1
    assert any(str(clip) in line and "past the end" in line for line in error_lines(err))


def test_batch_with_bad_files_exits_1_and_reports_each_at_the_end(clip, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(clip, d / "a_good.mp4")
    shutil.copy(clip, d / "z_good.mp4")
    synthetic.make_text(d / "b_text.mp4")
    synthetic.make_empty(d / "c_empty.mp4")
    synthetic.make_audio_only(d / "d_tone.m4a")  # not a video extension: skipped
    synthetic.make_audio_only(d / "e_tone.mp4")
    missing = tmp_path / "missing.mp4"
    code, out, err = run_cli(
        ["interval", d, missing, "--every", "2", "--out", tmp_path / "out"], capsys
    )
    assert code == 1
    for good in ("a_good", "z_good"):
        assert frames_shown(tmp_path / "out" / good) == [0, 50]
    errors = error_lines(err)
    named = {
        name: [e for e in errors if name in e]
        for name in ("b_text.mp4", "c_empty.mp4", "e_tone.mp4", "missing.mp4")
    }
    assert all(len(v) == 1 for v in named.values()), errors
    assert len(errors) == 4
    # The failures come last, after the summary and any progress output.
    tail = err.strip().splitlines()[-4:]
    assert sorted(tail) == sorted(errors)
    assert "d_tone.m4a" in err  # listed as skipped
    assert "2 of 6 video(s) done" in out and "4 failed" in out


def test_quiet_silences_progress_and_summary_but_not_errors(clip, tmp_path, capsys):
    bad = synthetic.make_text(tmp_path / "bad.mp4")
    code, out, err = run_cli(
        ["interval", clip, bad, "--every", "1", "--out", tmp_path / "out", "--quiet"], capsys
    )
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and ": error: " in lines[0]
    assert frames_shown(tmp_path / "out" / "clip") == [0, 25, 50, 75]


def test_quiet_success_prints_nothing(clip, tmp_path, capsys):
    code, out, err = run_cli(["credits", clip, "--tail", "1", "--out", tmp_path, "-q"], capsys)
    assert (code, out, err) == (0, "", "")
    assert frames_shown(tmp_path / "clip") == [75]


def test_output_folder_that_cannot_be_written(clip, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file")
    code, _, err = run_cli(["interval", clip, "--every", "1", "--out", blocker / "out"], capsys)
    assert code == 1
    errors = error_lines(err)
    assert len(errors) == 1
    assert str(clip) in errors[0] and "file.txt" in errors[0]
    assert blocker.read_text() == "a regular file"


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("name", ["-starts-with-dash.mp4", "with spaces.mp4", "vidéo_日本語.mp4"])
def test_odd_file_names(clip, tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    shutil.copy(clip, tmp_path / name)
    # A leading "-" needs "--" (or ./name) on any command line.
    argv = ["interval", "--every", "2", "--out", "out", "--", name]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    folder = tmp_path / "out" / Path(name).stem
    assert frames_shown(folder) == [0, 50]
    assert {r["video"] for r in read_rows(folder)} == {name}


def test_folder_input_recursive_case_insensitive_and_skipped_files(clip, tmp_path, capsys):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(clip, d / "top.MP4")
    shutil.copy(clip, d / "sub" / "deep.Mp4")
    (d / "notes.txt").write_text("not a video")
    (d / "poster.png").write_bytes(b"\x89PNG not really")
    code, _out, err = run_cli(["interval", d, "--every", "2", "--out", tmp_path / "flat"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["top"]
    assert "notes.txt" in err and "poster.png" in err and "skipped" in err
    assert error_lines(err) == []

    code, _, err = run_cli(
        ["interval", d, "--every", "2", "--out", tmp_path / "deep", "--recursive"], capsys
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["deep", "top"]
    assert frames_shown(tmp_path / "deep" / "deep") == [0, 50]


def test_folder_without_videos_fails(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = run_cli(["interval", tmp_path, "--every", "1", "--out", tmp_path / "o"], capsys)
    assert code == 1
    assert error_lines(err)


def test_same_stem_in_one_batch_gets_two_folders(clip, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(clip, tmp_path / "a" / "clip.mp4")
    synthetic.make_cfr(tmp_path / "b" / "clip.mp4", frames=60)
    code, _, err = run_cli(
        [
            "interval",
            tmp_path / "a" / "clip.mp4",
            tmp_path / "b" / "clip.mp4",
            "--every",
            "2",
            "--out",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 0, err
    folders = sorted((tmp_path / "out").iterdir())
    assert len(folders) == 2
    assert sorted(frames_shown(f) for f in folders) == [[0, 50], [0, 50]]
    assert sorted(len(read_rows(f)) for f in folders) == [2, 2]
    assert {r["video"] for f in folders for r in read_rows(f)} == {"clip.mp4"}


def test_jobs_2_same_result_as_jobs_1(clip, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        shutil.copy(clip, d / name)
    for jobs in ("1", "2"):
        code, _, err = run_cli(
            ["interval", d, "--every", "0.7", "--out", tmp_path / jobs, "-j", jobs, "-q"], capsys
        )
        assert code == 0, err
    for name in ("a", "b", "c"):
        assert (tmp_path / "1" / name / "frames.csv").read_bytes() == (
            tmp_path / "2" / name / "frames.csv"
        ).read_bytes()
        assert frames_shown(tmp_path / "2" / name) == [0, 17, 35, 52, 70, 87]


# --------------------------------------------------------------------------- info


def test_info_json(clip, rotated, tmp_path, capsys):
    bad = synthetic.make_empty(tmp_path / "empty.mp4")
    code, out, err = run_cli(["info", clip, rotated, bad, "--json"], capsys)
    assert code == 1
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2
    first, second = docs
    for key in (
        "path",
        "codec",
        "width",
        "height",
        "rotation",
        "duration",
        "start_time",
        "frame_count",
        "nominal_fps",
        "avg_fps",
        "variable_frame_rate",
    ):
        assert key in first
    assert first["frame_count"] == 100 and first["codec"] == "h264"
    assert first["duration"] == pytest.approx(4.0)
    assert first["variable_frame_rate"] is False
    assert (second["width"], second["height"], second["rotation"] % 180) == (160, 120, 90)
    errors = error_lines(err)
    assert len(errors) == 1 and "empty.mp4" in errors[0]


def test_info_text(clip, capsys):
    code, out, _ = run_cli(["info", clip], capsys)
    assert code == 0
    assert "100 frames" in out and "160x120" in out and "h264" in out


# --------------------------------------------------------------------------- demo


def test_demo_writes_stills(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, err = run_cli(["demo", "--out", tmp_path / "out"], capsys)
    folder = tmp_path / "out" / "sample_scenes"
    rows = read_rows(folder)
    assert [int(r["frame"]) for r in rows] == list(range(0, 600, 25))  # 24 s, every 1 s
    kept = list(folder.glob("*.jpg"))
    moved = list((folder / "duplicates").glob("*.jpg"))
    assert len(kept) + len(moved) == 24
    # The colour bars open and close the sample (0-4 s and 20-24 s): one kept,
    # the seven others moved aside, and the dedup summary is one plain line.
    bars = [f"f{frame:06d}.jpg" for frame in (*range(0, 100, 25), *range(500, 600, 25))]
    assert sorted(p.name[-11:] for p in moved if p.name[-11:] in bars) == sorted(bars[1:])
    summary = [line for line in out.splitlines() if "clusters" in line]
    assert len(summary) == 1 and f"{len(moved)} moved" in summary[0], out
    assert str(folder) in out
    assert code == 0, err


# --------------------------------------------------------------------------- real entry points


def _console_script() -> str:
    found = shutil.which("napari-video-extract")
    if found:
        return found
    candidate = Path(sys.executable).parent / "napari-video-extract"
    assert candidate.is_file(), "console script not installed next to the interpreter"
    return str(candidate)


def test_python_dash_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "napari_video_extract", "interval", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--every" in proc.stdout


def test_console_script_extracts_and_exit_codes(clip, tmp_path):
    exe = _console_script()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    ok = subprocess.run(
        [exe, "credits", str(clip), "--tail", "2", "--every", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert frames_shown(tmp_path / "clip") == [50, 75]
    usage = subprocess.run(
        [exe, "interval", str(clip), "--every", "0"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2
    assert "--every" in usage.stderr
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_video_extract",
            "interval",
            str(tmp_path / "nope.mp4"),
            "--every",
            "1",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "nope.mp4" in failed.stderr
