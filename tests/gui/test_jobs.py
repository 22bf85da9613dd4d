"""Workers end in exactly one of finished / failed / cancelled, whatever the job does."""

from __future__ import annotations

import numpy as np
import pytest

from deblurstudio.core.errors import ModelNotFoundError
from deblurstudio.gui import _engine
from deblurstudio.gui._jobs import Job, ProgressPanel, call_job, format_eta


def run_to_end(qtbot, factory):
    """Start a Job and record every signal it emits until `done`."""
    job = Job(factory, "test job")
    seen = []
    job.progress.connect(lambda step: seen.append(("progress", step)))
    job.finished.connect(lambda result: seen.append(("finished", result)))
    job.failed.connect(lambda exc: seen.append(("failed", exc)))
    job.cancelled.connect(lambda: seen.append(("cancelled", None)))
    with qtbot.waitSignal(job.done, timeout=120_000):
        job.start()
    return job, seen


def terminals(seen):
    return [kind for kind, _ in seen if kind != "progress"]


def test_engine_failure_after_progress_ends_in_exactly_one_failed(qtbot, tiny_models):
    image = np.zeros((32, 32, 3), np.float32)
    factory = _engine.deblur_job(
        image, model_id="no_such_model", mask=None, reference=None, device="cpu"
    )
    job, seen = run_to_end(qtbot, factory)
    assert terminals(seen) == ["failed"]
    assert isinstance(seen[-1][1], ModelNotFoundError) and "no_such_model" in str(seen[-1][1])
    assert not job.running


def test_plain_function_failure_and_success(qtbot):
    _, seen = run_to_end(qtbot, call_job(int, "not a number"))
    assert terminals(seen) == ["failed"] and isinstance(seen[-1][1], ValueError)
    _, seen = run_to_end(qtbot, call_job(int, "42"))
    assert seen == [("finished", 42)]


def test_cancel_requested_before_the_job_ends_wins(qtbot):
    def slow_job(token):
        for step in range(3):
            yield step / 3
        return "result the user no longer wants"

    job = Job(slow_job, "cancel me")
    seen = []
    job.finished.connect(lambda result: seen.append("finished"))
    job.cancelled.connect(lambda: seen.append("cancelled"))
    with qtbot.waitSignal(job.done, timeout=10_000):
        job.start()
        job.cancel()
    assert seen == ["cancelled"]


def test_progress_panel_shows_stage_and_eta_only_for_long_jobs(qtbot):
    panel = ProgressPanel(delay_ms=10_000)
    qtbot.addWidget(panel)
    job = Job(call_job(sum, [1, 2]), "quick")
    panel.track(job)
    with qtbot.waitSignal(job.done, timeout=10_000):
        job.start()
    assert panel.isHidden()  # ended before the delay: never flashed


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, ""), (4.4, "about 4 s left"), (65, "about 1 min 05 s left")]
)
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text
