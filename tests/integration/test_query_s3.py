"""`dynocc query` over committed shards on S3 (moto)."""

from __future__ import annotations

import json

from dynocc.cli import main
from dynocc.factory.tools.query import PAIRS_COLUMNS, run_query
from support import small_root_pairs, write_small_root


def test_query_on_s3(s3, capsys):
    out = s3.url("mined")
    rows = write_small_root(out, s3.storage_options)
    n_pairs = sum(len(r["pair_ordinal"]) for v in rows.values() for r in v)
    t = run_query("SELECT count(*) AS n, count(DISTINCT video_id) AS v FROM pairs", out, s3.storage_options)
    assert t.to_pylist() == [{"n": n_pairs, "v": 2}]
    got = run_query(f"SELECT {', '.join(PAIRS_COLUMNS)} FROM pairs", out, s3.storage_options)
    assert sorted(tuple(r.values()) for r in got.to_pylist()) == small_root_pairs(rows)
    so = json.dumps(s3.storage_options)
    assert main(["query", "SELECT error_type FROM failures", "--data", out, "--storage-options", so, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"error_type": "not_a_video"}]
