"""The Ray console handling (``factory/engine/ray_console.py``) leans on Ray's private printer: notice when
a Ray upgrade removes or changes it, and check that the handling restores everything it touched."""

from __future__ import annotations

import inspect
import logging

from dynocc.factory.engine.ray_console import OneLineHandler, private_ray_printer, quiet_ray, short_error


def test_rays_private_printer_is_still_there_with_the_signature_we_replace():
    worker = private_ray_printer()
    params = list(inspect.signature(worker.print_to_stdstream).parameters)
    assert params[:2] == ["data", "ignore_prefix"], f"Ray changed print_to_stdstream: {params}"


def test_quiet_ray_restores_what_it_changed():
    from ray.data import DataContext

    worker = private_ray_printer()
    printer = worker.print_to_stdstream
    ctx = DataContext.get_current()
    bars = ctx.enable_progress_bars
    handlers = list(logging.getLogger("ray.data").handlers)
    with quiet_ray(True):
        assert worker.print_to_stdstream is not printer
        assert ctx.enable_progress_bars is False
        assert any(isinstance(h, OneLineHandler) for h in logging.getLogger("ray.data").handlers)
    assert worker.print_to_stdstream is printer
    assert ctx.enable_progress_bars == bars
    assert logging.getLogger("ray.data").handlers == handlers
    with quiet_ray(False):
        assert worker.print_to_stdstream is printer


def test_raylet_errors_become_one_short_line_on_stderr(capsys):
    with quiet_ray(True):
        private_ray_printer().print_to_stdstream(
            {"pid": "raylet", "is_err": False, "lines": ["A worker died.  Ray retries the task. Details follow. More."]},
            False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == "ray: A worker died. Ray retries the task.\n"


def test_short_error_keeps_the_first_and_the_last_line():
    e = RuntimeError("\x1b[31mfirst line\x1b[0m\n  Traceback ...\n  ValueError: the real cause")
    assert short_error(e) == "RuntimeError: first line ... ValueError: the real cause"
