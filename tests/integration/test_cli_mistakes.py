"""A user's mistakes end in one line naming the problem and exit code 2, with nothing written."""

from __future__ import annotations

import os
import stat

import pytest

from support import run_cli, write_spec


@pytest.fixture(scope="module")
def clip(synthetic_videos):
    return synthetic_videos(["mistake.mp4"], height=64, width=80, n_frames=6)[0]


def _no_output_written(path) -> bool:
    return not os.path.exists(path) or not any(p for p in path.rglob("*") if p.is_file())


def _refused(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dynocc mine"), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_out_that_is_a_file(clip, tmp_path, engine):
    out = tmp_path / "out.txt"
    out.write_text("not a folder\n")
    r = run_cli("mine", clip, "--out", out, "--quiet", "--engine", engine)
    _refused(r, "is a file")
    assert out.read_text() == "not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0 and not os.environ.get("DYNOCC_TEST_AS_ROOT_CHECKS_PERMISSIONS"),
                    reason="root may write anywhere: a read-only folder does not stop it")
def test_out_without_write_permission(clip, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        r = run_cli("mine", clip, "--out", locked / "out", "--quiet", "--engine", "local")
        _refused(r, "no permission")
    finally:
        locked.chmod(stat.S_IRWXU)


def test_out_in_a_folder_we_cannot_write_is_refused_even_for_root(clip, tmp_path):
    """Root ignores permission bits, so here the folder is on a read-only path instead: /proc."""
    r = run_cli("mine", clip, "--out", "/proc/dynocc-out", "--quiet", "--engine", "local")
    _refused(r, "/proc")


def test_out_inside_an_input_folder(clip, tmp_path):
    r = run_cli("mine", clip.parent, "--out", clip.parent / "mined", "--quiet", "--engine", "local")
    _refused(r, "inside the input folder")
    assert not (clip.parent / "mined").exists()


def test_storage_options_for_the_wrong_protocol(clip, tmp_path):
    out = tmp_path / "out"
    r = run_cli("mine", clip, "--out", out, "--quiet", "--engine", "local",
                "--storage-options", '{"gs": {"token": "anon"}}')
    _refused(r, "gs", "file")
    r = run_cli("mine", clip, "--out", out, "--quiet", "--engine", "local",
                "--storage-options", '{"endpoint_url": "http://127.0.0.1:9"}')
    _refused(r, "do not apply to file://")
    assert _no_output_written(out)


@pytest.mark.parametrize("name, data, words", [
    ("empty.txt", b"", "empty"),
    ("comments.txt", b"# nothing here\n\n", "empty"),
    ("binary.txt", os.urandom(512) + b"\0\0", "binary"),
    ("fake.parquet", b"just text", "not a Parquet file"),
])
def test_bad_list_files(clip, tmp_path, name, data, words):
    listing = tmp_path / name
    listing.write_bytes(data)
    out = tmp_path / "out"
    r = run_cli("mine", f"@{listing}", "--out", out, "--quiet", "--engine", "local")
    _refused(r, words)
    assert _no_output_written(out)


def test_a_job_spec_with_a_key_of_the_wrong_type(clip, tmp_path):
    spec = write_spec(tmp_path / "job.yaml", command="mine", inputs=[str(clip)], out=str(tmp_path / "out"),
                      engine="local", max_retries="many")
    r = run_cli("mine", "--job", spec, "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "max_retries" in r.stderr
    assert _no_output_written(tmp_path / "out")
