"""`dynocc query`: DuckDB views over committed shards and its outputs (on S3: tests/integration/test_query_s3.py)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from dynocc.cli import main
from dynocc.factory.tools.query import PAIRS_COLUMNS, QueryError, connect, format_table, run_query
from dynocc.factory.core.stereo import inverse_depth_png
from dynocc.factory.io.writer import ShardWriter
from dynocc.schemas import failure_row, frame_row
from support import SMALL_H, SMALL_W, small_root_pairs, write_small_root

W, H = SMALL_W, SMALL_H  # the frame size of small_video_rows


def _stereo_row(name: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    disparity = rng.uniform(0, 10, (H, W)).astype(np.float32)
    n = 6
    return frame_row("redweb", name, 0, b"\xff\xd8stereo", W, H, rng.integers(0, H, n), rng.integers(0, W, n),
                     rng.integers(0, H, n), rng.integers(0, W, n), rng.integers(-1, 2, n),
                     depth_png=inverse_depth_png(disparity, np.ones((H, W), bool)))


@pytest.fixture
def out(tmp_path):
    path = str(tmp_path / "mined")
    rows = write_small_root(path)
    return path, rows


def test_views_read_committed_rows_only(out):
    path, rows = out
    con = connect(path)
    assert [r[0] for r in con.execute("DESCRIBE pairs").fetchall()] == list(PAIRS_COLUMNS)
    frames_cols = [r[0] for r in con.execute("DESCRIBE frames").fetchall()]
    assert "image" not in frames_cols and "pair_ordinal" in frames_cols and "video_id" in frames_cols
    got = sorted(con.execute(f"SELECT {', '.join(PAIRS_COLUMNS)} FROM pairs").fetchall())
    assert got == small_root_pairs(rows)  # ghost (uncommitted) is absent, every pair in order
    assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 6
    assert con.execute("SELECT input, error_type FROM failures").fetchall() == [("broken.mp4", "not_a_video")]
    con.close()
    with_images = run_query("SELECT image FROM frames WHERE video_id = 'alpha' ORDER BY frame_index", path,
                            with_images=True)
    assert with_images["image"].to_pylist()[0] == b"\xff\xd8fakejpeg\x00"


def test_several_roots_and_stereo_rows_are_unified_by_name(out, tmp_path):
    path, _ = out
    stereo = str(tmp_path / "stereo")
    ShardWriter(stereo).write_item("left.jpg", [_stereo_row("left", 1)], [], 0.5)
    t = run_query("SELECT dataset, count(*) AS frames, count(depth_png) AS depth FROM frames "
                  "GROUP BY dataset ORDER BY dataset", [path, stereo], with_images=True)
    assert t.to_pylist() == [{"dataset": "dynocc", "frames": 6, "depth": 0}, {"dataset": "redweb", "frames": 1, "depth": 1}]
    cols = run_query("SELECT * FROM frames LIMIT 1", [path, stereo]).column_names
    assert "depth_png" not in cols and "image" not in cols
    assert run_query("SELECT count(*) AS n FROM pairs WHERE dataset = 'redweb'", [stereo, path])["n"][0].as_py() == 6


def test_cli_text_json_csv(out, capsys):
    path, rows = out
    n_pairs = sum(len(r["pair_ordinal"]) for v in rows.values() for r in v)
    sql = "SELECT video_id, count(*) AS pairs, avg(ya) AS mean_ya FROM pairs GROUP BY video_id ORDER BY video_id"
    assert main(["query", sql, "--data", path]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["video_id", "pairs", "mean_ya"]
    assert set(text[1].replace(" ", "")) == {"-"}
    assert text[2].split()[0] == "alpha" and text[3].split()[0] == "beta" and text[-1] == "(2 rows)"
    # aligned: every column ends at the same offset in every line (numbers right-aligned)
    assert len({len(line) for line in text[:4]}) == 1

    assert main(["query", sql, "--data", path, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["video_id"] for r in got] == ["alpha", "beta"]
    assert sum(r["pairs"] for r in got) == n_pairs
    assert isinstance(got[0]["mean_ya"], float)

    assert main(["query", "SELECT * FROM pairs ORDER BY video_id, frame_index, pair_index", "--data", path,
                 "--csv"]) == 0
    got = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(got) == n_pairs and list(got[0]) == list(PAIRS_COLUMNS)
    first = rows["alpha"][0]
    assert (int(got[0]["ya"]), int(got[0]["xb"]), int(got[0]["ordinal"])) == (
        int(first["pair_ya"][0]), int(first["pair_xb"][0]), int(first["pair_ordinal"][0]))

    assert main(["query", "SELECT video_id, image FROM frames LIMIT 1", "--data", path, "--with-images",
                 "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)[0]["image"], str)  # base64


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT nope FROM pairs", "SELECT image FROM frames",
                                 "SELECT CAST('x' AS INTEGER)"])
def test_bad_sql_is_one_line_and_exit_2(out, capsys, sql):
    path, _ = out
    assert main(["query", sql, "--data", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynocc query: ") and "Traceback" not in captured.err
    with pytest.raises(QueryError):
        run_query(sql, path)


def test_missing_root_and_empty_output(tmp_path, capsys):
    assert main(["query", "SELECT 1", "--data", str(tmp_path / "nothing")]) == 2
    assert "no mining output" in capsys.readouterr().err
    empty = str(tmp_path / "only_failures")
    ShardWriter(empty).write_item("x.mp4", [], [failure_row("x.mp4", "decode", "not_a_video", "no")], 0.0)
    assert run_query("SELECT count(*) AS n FROM pairs", empty)["n"][0].as_py() == 0
    assert run_query("SELECT count(*) AS n FROM frames", empty)["n"][0].as_py() == 0
    assert run_query("SELECT count(*) AS n FROM failures", empty)["n"][0].as_py() == 1


def test_format_table_cuts_long_cells():
    import pyarrow as pa

    t = pa.table({"name": ["a" * 100, None], "n": [1, 22]})
    lines = format_table(t, max_width=10).splitlines()
    assert lines[2].startswith("aaaaaaaaa…") and "NULL" in lines[3]
    assert lines[2].endswith(" 1") and lines[3].endswith("22")
