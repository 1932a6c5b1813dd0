"""jobs/: the ready job specs, their validation (dynocc/jobspec.py) and `dynocc mine --job` in-process
(the CLI in a subprocess: tests/integration/test_jobs_cli.py)."""

from __future__ import annotations

import pytest

from dynocc import cli
from dynocc.config_loader import ConfigError
from dynocc.jobspec import apply_job_spec, load_job_spec, spec_kind
from support import REPO, write_spec

MINE_SPECS = sorted((REPO / "jobs").glob("mine_*.yaml"))


def parsed(*argv) -> object:
    """The parsed and spec-filled arguments of a mining command, as cmd_mine sees them."""
    args = cli.build_parser().parse_args([str(a) for a in argv])
    apply_job_spec(args)
    return args


# --------------------------------------------------------------------------- the shipped specs


def test_the_three_mining_specs_are_there():
    assert {p.name for p in MINE_SPECS} >= {"mine_youtube_vos.yaml", "mine_urls.yaml", "mine_stereo.yaml"}


@pytest.mark.parametrize("path", MINE_SPECS, ids=lambda p: p.name)
def test_every_mining_spec_validates_and_builds_its_config(path):
    spec = load_job_spec(str(path))
    assert spec_kind(str(path)) == spec.command
    assert spec.command == ("mine-stereo" if "stereo" in path.name else "mine")
    assert spec.inputs and spec.out
    for url in [spec.out, *(i.lstrip("@") for i in spec.inputs)]:
        assert url.startswith(("s3://", "gs://")), url  # cluster specs read and write object storage
    args = parsed(spec.command, "--job", path)
    assert args.inputs == spec.inputs and args.out == spec.out and args.engine == spec.engine
    config = (cli._stereo_config if spec.command == "mine-stereo" else cli._miner_config)(args)
    assert config.model_dump(mode="json") == _miner_dump(spec)


def _miner_dump(spec) -> dict:
    from dynocc.config_loader import load_config
    from dynocc.jobspec import miner_model

    config = load_config(miner_model(spec.command), base=spec.miner)
    if spec.storage_options:
        config = config.model_copy(update={"source": config.source.model_copy(
            update={"storage_options": spec.storage_options})})
    return config.model_dump(mode="json")


def test_the_shipped_specs_say_what_their_names_say():
    vos = load_job_spec(str(REPO / "jobs/mine_youtube_vos.yaml"))
    assert any(i.rstrip("/").endswith("JPEGImages") for i in vos.inputs)
    assert vos.gpus_per_actor and vos.miner["flow"]["backend"] == "raft-small"
    urls = load_job_spec(str(REPO / "jobs/mine_urls.yaml"))
    assert urls.inputs[0].startswith("@s3://") and urls.inputs[0].endswith("urls.txt")
    assert urls.miner["source"]["max_height"] and urls.miner["source"]["max_duration"]
    stereo = load_job_spec(str(REPO / "jobs/mine_stereo.yaml"))
    assert stereo.command == "mine-stereo" and stereo.miner["stereo"]["sigma"] == 0.02


# --------------------------------------------------------------------------- bad specs


BASE = dict(command="mine", inputs=["a.mp4"], out="out", engine="ray")


@pytest.mark.parametrize("change,named", [
    ({"actorz": 3}, "actorz: unknown setting"),
    ({"actors": 0}, "actors: Input should be greater than or equal to 1"),
    ({"engine": "spark"}, "engine: Input should be 'ray' or 'local'"),
    ({"command": "train"}, "command: Input should be 'mine' or 'mine-stereo'"),
    ({"inputs": [""]}, "inputs"),
    ({"miner": {"decode": {"max_frame": 8}}}, "miner.decode.max_frame: unknown setting"),
    ({"miner": {"vote": {"delta": 2}}}, "miner.vote.delta: Input should be less than 1"),
    ({"miner": {"flow": {"backend": "raft-small"}}}, "miner.flow"),
    ({"miner": {"stereo": {"sigma": 0.1}}}, "miner.stereo: unknown setting"),
    ({"engine": "local", "actors": 2}, "actors only apply to engine 'ray'"),
])
def test_a_bad_key_or_value_is_refused_naming_the_key(tmp_path, capsys, change, named):
    spec = write_spec(tmp_path / "bad.yaml", **{**BASE, **change})
    with pytest.raises(ConfigError, match="bad settings") as e:
        load_job_spec(str(spec))
    assert named in str(e.value)
    assert cli.main(["mine", "--job", str(spec)]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_a_spec_for_the_other_command_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", **{**BASE, "command": "mine-stereo"})
    assert cli.main(["mine", "--job", str(spec)]) == 2
    assert "is for `dynocc mine-stereo`" in capsys.readouterr().err


def test_inputs_and_out_must_come_from_somewhere(tmp_path, capsys):
    assert cli.main(["mine", "--out", str(tmp_path)]) == 2
    assert "no inputs: give INPUT arguments or a --job spec with inputs" in capsys.readouterr().err
    assert cli.main(["mine", "a.mp4"]) == 2
    assert "no output: give --out or a --job spec with out" in capsys.readouterr().err
    spec = write_spec(tmp_path / "s.yaml", command="mine", engine="local")
    assert cli.main(["mine", "--job", str(spec), "--out", str(tmp_path)]) == 2
    assert f"(job spec {spec} has none)" in capsys.readouterr().err


# --------------------------------------------------------------------------- precedence


def test_spec_values_are_defaults_and_flags_override_them(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", command="mine", inputs=["a.mp4", "b/"], out="s3://b/out", engine="ray",
                      actors=4, cpus_per_actor=2, gpus_per_actor=0.5, address="ray://head:10001", shard_size=64,
                      max_retries=5, retry_failed=True, storage_options={"anon": True},
                      miner={"dataset": "from-spec", "seed": 7, "decode": {"max_frames": 8, "frame_step": 3},
                             "vote": {"delta": 0.4}})
    a = parsed("mine", "--job", spec)
    assert (a.inputs, a.out, a.engine, a.actors, a.cpus_per_actor, a.gpus_per_actor, a.address) == \
           (["a.mp4", "b/"], "s3://b/out", "ray", 4, 2, 0.5, "ray://head:10001")
    assert (a.shard_size, a.max_retries, a.retry_failed, a.storage_options) == (64, 5, True, {"anon": True})
    c = cli._miner_config(a)
    assert (c.dataset, c.seed, c.decode.max_frames, c.decode.frame_step, c.vote.delta) == ("from-spec", 7, 8, 3, 0.4)
    assert c.source.storage_options == {"anon": True}

    layer = tmp_path / "layer.yaml"
    layer.write_text("decode: {frame_step: 2}\nvote: {segment_length: 20}\n")
    a = parsed("mine", "x.mp4", "--job", spec, "--out", "elsewhere", "--actors", "2", "--shard-size", "9",
               "--max-retries", "0", "--storage-options", '{"anon": false}', "--config", layer,
               "--set", "decode.max_frames=6", "--dataset", "flag", "--max-long-side", "320")
    assert (a.inputs, a.out, a.actors, a.cpus_per_actor, a.shard_size, a.max_retries) == \
           (["x.mp4"], "elsewhere", 2, 2, 9, 0)
    assert a.storage_options == {"anon": False}
    c = cli._miner_config(a)
    # spec < --config file < --set < flags; the spec's keys the others leave alone stay
    assert (c.dataset, c.seed, c.decode.max_frames, c.decode.frame_step, c.decode.max_long_side) == \
           ("flag", 7, 6, 2, 320)
    assert (c.vote.delta, c.vote.segment_length) == (0.4, 20)

    # --engine local drops the spec's Ray-only settings instead of refusing them
    a = parsed("mine", "--job", spec, "--engine", "local")
    assert a.engine == "local" and (a.actors, a.cpus_per_actor, a.gpus_per_actor, a.address) == (None,) * 4


def test_without_a_spec_the_defaults_are_unchanged():
    a = parsed("mine", "v.mp4", "--out", "o")
    assert (a.engine, a.shard_size, a.max_retries, a.retry_failed, a.storage_options) == ("ray", 256, 2, False, None)
    assert cli._miner_config(a).model_dump() == cli._miner_config(
        cli.build_parser().parse_args(["mine", "v.mp4", "--out", "o"])).model_dump()


def test_spec_miner_values_reach_the_config_as_written():
    from dynocc.config_loader import load_config
    from dynocc.factory.config import MinerConfig, StereoJobConfig

    tree = {"dataset": "yes", "decode": {"max_long_side": None, "max_frames": 3},
            "source": {"cookies": "a=b: c.txt", "storage_options": {"s3": {"key": "007", "anon": False}}}}
    c = load_config(MinerConfig, base=tree)
    assert c.dataset == "yes" and c.decode.max_long_side is None and c.decode.max_frames == 3
    assert c.source.cookies == "a=b: c.txt" and c.source.storage_options == {"s3": {"key": "007", "anon": False}}
    s = load_config(StereoJobConfig, base={"stereo": {"sky_hue_range": [180, 260]}})
    assert s.stereo.sky_hue_range == (180.0, 260.0)
