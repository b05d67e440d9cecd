"""core.report.convergence: the 1% plateau rule of docs/claims.md on hand-made validation curves,
and the learning-curve figure that shows it."""

from __future__ import annotations

import math

import pytest

from core.report.convergence import convergence_summary, plateau_step
from core.report.figures import learning_curves


def curve(steps, values):
    return {"step": list(steps), "value": list(values)}


def test_exponential_decay_flattens_early_and_converged():
    steps = list(range(0, 101, 5))
    values = [math.exp(-s / 10) for s in steps]
    # remaining decrease exp(-s/10) - exp(-10) < 1% of (1 - exp(-10)) first at s = 50 (s = 45: 0.011)
    assert plateau_step(steps, values) == 50
    summary = convergence_summary(curve(steps, values), budget=100)
    assert summary["plateau_step"] == 50 and summary["budget"] == 100 and summary["converged"] is True
    assert summary["total_decrease"] == pytest.approx(1 - math.exp(-10))
    assert summary["final"] == summary["min"] == pytest.approx(math.exp(-10))
    # a looser tolerance flattens earlier: exp(-s/10) < 0.1 first at s = 25
    assert plateau_step(steps, values, tol=0.1) == 25


def test_linear_decrease_to_the_end_is_not_converged():
    steps = list(range(0, 101, 10))
    values = [1.0 - s / 100 for s in steps]
    # every point but the last still has 10% of the decrease ahead of it
    assert plateau_step(steps, values) == 100
    summary = convergence_summary(curve(steps, values), budget=100)
    assert summary["plateau_step"] == 100 and summary["converged"] is False


def test_flat_or_rising_curve_has_no_plateau():
    for values in ([0.7] * 6, [0.5, 0.6, 0.7, 0.8]):
        steps = list(range(0, 10 * len(values), 10))
        assert plateau_step(steps, values) is None
        summary = convergence_summary(curve(steps, values), budget=steps[-1])
        assert summary["plateau_step"] is None and summary["converged"] is False
        assert summary["total_decrease"] == 0.0


def test_fewer_than_three_points_have_no_plateau():
    assert plateau_step([0, 10], [1.0, 0.1]) is None
    assert plateau_step([], []) is None
    empty = convergence_summary(curve([], []), budget=10)
    assert empty == {
        "plateau_step": None,
        "budget": 10,
        "converged": False,
        "total_decrease": 0.0,
        "final": None,
        "min": None,
    }


def test_noise_above_the_threshold_delays_the_plateau_to_the_tail_minimum():
    steps = list(range(0, 80, 10))
    # total decrease 0.91, threshold 0.0091; the tail wobbles by 0.01-0.03 around 0.1
    values = [1.0, 0.5, 0.2, 0.1, 0.12, 0.09, 0.11, 0.1]
    # 0.1 at step 30 still has 0.01 (> 1%) to go (0.09 at step 50); step 50 is the tail's minimum
    assert plateau_step(steps, values) == 50
    assert convergence_summary(curve(steps, values), budget=70)["converged"] is True
    # the same wobble ending on its lowest value: the plateau is the last point, not converged
    ends_low = [1.0, 0.5, 0.2, 0.1, 0.12, 0.1, 0.11, 0.09]
    assert plateau_step(steps, ends_low) == 70
    assert convergence_summary(curve(steps, ends_low), budget=70)["converged"] is False


def test_noise_below_the_threshold_does_not_move_the_plateau():
    steps = list(range(0, 101, 5))
    clean = [math.exp(-s / 10) for s in steps]
    wobble = [v + (0.002 if i % 2 else -0.002) * (i > 0) for i, v in enumerate(clean)]
    assert plateau_step(steps, wobble) == plateau_step(steps, clean) == 50


def test_a_curve_stopping_before_the_budget_is_not_converged_on_its_last_point():
    steps, values = [0, 10, 20, 30], [1.0, 0.7, 0.4, 0.1]
    summary = convergence_summary(curve(steps, values), budget=100)
    assert summary["plateau_step"] == 30 and summary["converged"] is False


def test_bad_curves_raise():
    with pytest.raises(ValueError, match="3 steps but 2 values"):
        plateau_step([0, 1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="increase strictly"):
        plateau_step([0, 2, 1], [1.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="non-finite"):
        plateau_step([0, 1, 2], [1.0, float("nan"), 0.2])
    with pytest.raises(ValueError, match="tol"):
        plateau_step([0, 1, 2], [1.0, 0.5, 0.2], tol=0.0)


def test_learning_curves_figure_is_written(tmp_path):
    steps = list(range(0, 101, 10))
    dense = list(range(0, 101, 2))
    series = []
    for label, rate in (("BTL", 10.0), ("DR (TV, ρ=0.6)", 40.0)):
        evals = [curve(steps, [math.exp(-s / rate) + 0.01 * seed for s in steps]) for seed in range(3)]
        trains = [curve(dense, [math.exp(-s / rate) * 1.1 + 0.01 * seed for s in dense]) for seed in range(3)]
        mean = [sum(c["value"][i] for c in evals) / 3 for i in range(len(steps))]
        plateau = convergence_summary(curve(steps, mean), budget=100)["plateau_step"]
        series.append({"label": label, "train": trains, "eval": evals, "budget": 100, "plateau": plateau})
    series.append({"label": "no training curve", "train": None, "eval": [curve(steps, [0.5] * 11)], "budget": 100})
    out = tmp_path / "figures" / "learning_curves.png"
    learning_curves(series, str(out), "Validation loss and the 1% plateau")
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 1000
    with pytest.raises(ValueError, match="no series"):
        learning_curves([], str(tmp_path / "empty.png"), "none")


def test_learning_curves_figure_from_train_files_and_the_family_gate(tmp_path):
    """make_figure's learning_curves kind reads each seed's train.json (loss and eval_loss), and
    the family's convergence is that of the seed-mean validation curve (budget None: last step)."""
    import math

    from core.eval.results import write_metrics
    from core.report.convergence import family_convergence
    from core.report.figures import make_figure
    from core.report.spec_types import FigureSpec, Series

    steps = list(range(0, 61, 6))
    files = []
    for seed in range(3):
        val = [1.0 + 0.5 * math.exp(-s / 6) + 0.002 * seed for s in steps]
        curves = {"eval_loss": {"step": steps, "value": val}, "loss": {"step": steps[1:], "value": val[1:]}}
        path = tmp_path / f"train{seed}.json"
        write_metrics(path, {"curves": curves}, model_path="m", dataset_path="d", counts={}, seed=seed)
        files.append(str(path))
    summary = family_convergence(files, None)
    assert summary["budget"] == 60 and summary["converged"] and summary["plateau_step"] < 60
    assert family_convergence(files, 60) == summary
    out = tmp_path / "lc.png"
    make_figure(FigureSpec("learning_curves", "learning_curves", "t", series=(Series("BTL RM", tuple(files), 60),)),
                str(out))  # fmt: skip
    assert out.stat().st_size > 1000
    bare = tmp_path / "bare.json"
    write_metrics(bare, {"curves": {"loss": {"step": [1], "value": [1.0]}}}, model_path="m", dataset_path="d",
                  counts={}, seed=0)  # fmt: skip
    spec = FigureSpec("x", "learning_curves", series=(Series("a", (str(bare),), 1),))
    with pytest.raises(ValueError, match="no validation curve"):
        make_figure(spec, str(tmp_path / "x.png"))
