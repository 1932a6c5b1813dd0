"""`dynocc eval` and `dynocc predict` as a user runs them: a real subprocess on a tiny checkpoint."""

from __future__ import annotations

import json

import cv2
import numpy as np

from dynocc.trainer.evaluate import write_diw_csv
from support import run_cli, tiny_checkpoint


def test_eval_and_predict_commands(tmp_path):
    tiny_checkpoint(str(tmp_path / "run"))
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    recs = [{"image": "a.png", "ya": 1, "xa": 2, "yb": 30, "xb": 60, "ordinal": o, "width": 70, "height": 50}
            for o in (1, -1, 1)]
    write_diw_csv(str(tmp_path / "d.csv"), recs)
    r = run_cli("eval", "--checkpoint", tmp_path / "run", "--diw-csv", tmp_path / "d.csv")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["pairs"] == 3 and last["images"] == 1 and 0 <= last["whdr"] <= 1 and last["step"] == 7

    r = run_cli("predict", "--checkpoint", tmp_path / "run", tmp_path / "a.png", "--out", tmp_path / "pred")
    assert r.returncode == 0, r.stderr
    depth = cv2.imread(str(tmp_path / "pred" / "a.depth.png"), cv2.IMREAD_UNCHANGED)
    color = cv2.imread(str(tmp_path / "pred" / "a.color.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (50, 70) and depth.max() == 65535
    assert color.shape == (50, 70, 3)

    r = run_cli("eval", "--checkpoint", tmp_path / "nothing", "--diw-csv", tmp_path / "d.csv")
    assert r.returncode == 2 and "no checkpoint" in r.stderr

    # a user's bad DIW file: one line naming the problem, exit 2, no traceback
    (tmp_path / "bad.csv").write_text("a.png\n1,2,30,x,<,70,50\n")
    for csv_path, says in ((tmp_path / "bad.csv", "line 2"), (tmp_path / "missing.csv", "missing.csv")):
        r = run_cli("eval", "--checkpoint", tmp_path / "run", "--diw-csv", csv_path)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
