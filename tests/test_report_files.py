"""Writing report files: paths checked up front, atomic writes, E901 with the path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqcirc.errors import InputError
from seqcirc.report import check_report_paths
from seqcirc.report.files import check_writable, write_text


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.json"
    write_text(out, "first\n", "JSON report")
    write_text(out, "second\n", "JSON report")
    assert out.read_text() == "second\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]


def test_a_size_limit_leaves_the_old_file_not_a_truncated_one(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old\n")
    code = f"""
import resource
from seqcirc.report.files import write_text
from seqcirc.errors import InputError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_text({str(out)!r}, "x" * 100_000, "JSON report")
except InputError as err:
    print(err.code, err.message)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.startswith(f"E901 cannot write the JSON report to {out}:"), proc.stderr
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_directory_is_refused_before_and_at_writing(tmp_path: Path) -> None:
    for call in (lambda: check_writable(tmp_path, "JSON report"),
                 lambda: write_text(tmp_path, "x", "JSON report")):  # fmt: skip
        with pytest.raises(InputError) as err:
            call()
        assert err.value.code == "E901"
        assert err.value.message == f"cannot write the JSON report to {tmp_path}: it is a directory"


def test_check_finds_a_file_in_the_way_and_creates_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(InputError) as err:
        check_report_paths(html_path=blocker / "deep" / "r.html")
    assert err.value.code == "E901" and "HTML report" in err.value.message
    assert "is not a directory" in err.value.message
    check_writable(tmp_path / "new" / "deeper" / "r.md", "Markdown report")
    assert not (tmp_path / "new").exists()  # checked, not made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_finds_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="permission denied"):
            check_writable(folder / "r.json", "JSON report")
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_device_is_written_in_place_and_its_failure_is_e901() -> None:
    check_writable("/dev/full", "JSON report")  # writable: it fails only when written
    with pytest.raises(InputError) as err:
        write_text("/dev/full", "x", "JSON report")
    assert err.value.code == "E901" and "/dev/full" in err.value.message
    assert Path("/dev/full").is_char_device()  # not replaced by a regular file
    write_text("/dev/null", "x", "JSON report")
