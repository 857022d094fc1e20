"""Output-folder safety: the extraction lock, stale temporaries, files that are not ours."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from napari_video_extract.core.errors import OutputError
from napari_video_extract.core.folder_lock import (
    LOCK_NAME,
    folder_lock,
    remove_stale_temporaries,
)

LOCK = LOCK_NAME


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_refused_run_leaves_the_lock_alone(tmp_path):
    with folder_lock(tmp_path):
        for _ in range(2):  # a second run, then a third
            with pytest.raises(OutputError, match="another extraction"), folder_lock(tmp_path):
                pass  # pragma: no cover
            assert (tmp_path / LOCK).exists()
    assert not (tmp_path / LOCK).exists()  # the holder removes it on exit


def test_lock_of_a_removed_file_is_not_held(tmp_path, monkeypatch):
    """Run X opens the lock file; before X locks it, its holder removes it and
    run Y creates and locks a new one; X then locks the removed file. X must
    see that and be refused, not run beside Y."""
    import fcntl

    import napari_video_extract.core.folder_lock as lock_module

    real_flock = fcntl.flock
    y_fd = []

    def flock_after_the_race(fd, operation):
        if not y_fd:
            os.unlink(tmp_path / LOCK)  # the old holder leaves
            y_fd.append(os.open(tmp_path / LOCK, os.O_RDWR | os.O_CREAT))
            real_flock(y_fd[0], fcntl.LOCK_EX)  # run Y holds the new file
        return real_flock(fd, operation)

    monkeypatch.setattr(lock_module.fcntl, "flock", flock_after_the_race)
    try:
        with pytest.raises(OutputError, match="another extraction"), folder_lock(tmp_path):
            pass
        assert (tmp_path / LOCK).exists()  # Y's lock file, untouched by X
    finally:
        os.close(y_fd[0])


def test_stale_clean_up_removes_only_dead_runs_temporaries(tmp_path):
    dead = _dead_pid()
    stale = [
        tmp_path / f".a_00-00-01.000_f000025.jpg.tmp-{dead}-140",
        tmp_path / f".frames.csv.tmp-{dead}",
    ]
    live = [
        tmp_path / f".a_00-00-02.000_f000050.png.tmp-{os.getpid()}-7",  # a running writer
        tmp_path / f".frames.csv.tmp-{os.getppid()}",
    ]
    foreign = [
        tmp_path / f".notes.txt.tmp-{dead}",  # not one of our names
        tmp_path / ".photo.jpg.tmp-abc",
        tmp_path / "photo.jpg.tmp-12",
    ]
    for p in stale + live + foreign:
        p.write_bytes(b"x")
    remove_stale_temporaries(tmp_path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in live + foreign)


def test_users_own_frames_csv_is_never_replaced(cfr_video, tmp_path):
    from napari_video_extract.core.extract import Interval, extract_video

    out = tmp_path / "out"
    out.mkdir()
    users = b"file,comment\nholiday.jpg,my notes\n"
    (out / "frames.csv").write_bytes(users)
    with pytest.raises(OutputError, match="not written by this tool") as excinfo:
        extract_video(cfr_video, out, Interval(every=1.0))
    assert str(out / "frames.csv") in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert (out / "frames.csv").read_bytes() == users
    assert sorted(os.listdir(out)) == ["frames.csv"]  # nothing written, lock removed


def test_frames_csv_of_an_earlier_run_is_ours_and_resumed(cfr_video, tmp_path):
    from napari_video_extract.core.extract import Interval, extract_video

    out = tmp_path / "out"
    first = extract_video(cfr_video, out, Interval(every=1.0))
    lines = (out / "frames.csv").read_text().splitlines()
    assert lines[0] == "file,video,time,frame,requested_time,width,height"
    # As a killed run leaves it: two rows recorded, the other stills gone.
    (out / "frames.csv").write_text("\n".join(lines[:3]) + "\n")
    for rec in first.records[2:]:
        (out / rec.file).unlink()
    again = extract_video(cfr_video, out, Interval(every=1.0))
    assert again.ok and again.resumed == 2 and again.written == 2
