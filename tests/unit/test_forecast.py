"""Forecasts a scaling decision can lean on: seasons found, ramps extrapolated, steps followed, real traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kubeagora.decision import forecast as fc

NASA_TRACE = (Path(__file__).resolve().parents[2].parent / "shared" / "traces" / "nasa_http_1995"
              / "nasa_http_1995_requests_per_second.txt")


def test_the_period_of_a_noisy_sinusoid_is_found() -> None:
    t = np.arange(600)
    rng = np.random.default_rng(0)
    series = np.stack([
        100 + 50 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 5, t.size),
        300 + 80 * np.sin(2 * np.pi * t / 100) + rng.normal(0, 10, t.size),
        200 + rng.normal(0, 10, t.size),  # white noise has no season
    ])
    periods = fc.dominant_period_steps(series)
    assert periods[0] == 48
    assert abs(int(periods[1]) - 100) <= 2
    assert periods[2] == 0


def test_a_season_needs_two_cycles_of_history() -> None:
    t = np.arange(150)
    assert fc.dominant_period_steps(100 + 50 * np.sin(2 * np.pi * t / 100))[0] == 0


def test_a_linear_ramp_is_extrapolated() -> None:
    ramp = 10.0 + 2.0 * np.arange(100)
    predicted = fc.forecast(ramp, 5, step_s=15.0)[0]
    expected = 10.0 + 2.0 * np.arange(100, 105)
    np.testing.assert_allclose(predicted, expected, rtol=0.03)
    assert np.all(np.diff(predicted) > 1.0), "the forecast keeps climbing"


def test_a_step_is_tracked_within_a_few_samples() -> None:
    state = fc.initial_state(1, 15.0)
    for value in [100.0] * 40 + [300.0] * 5:
        state = fc.observe(state, np.array([value]))
    one_step = fc.predict(state, 1).mean_rps[0, 0]
    assert one_step == pytest.approx(300.0, rel=0.05)
    upper = fc.predict(state, 3).upper_rps[0]
    assert np.all(upper >= fc.predict(state, 3).mean_rps[0])


def test_the_upper_quantile_covers_poisson_noise() -> None:
    rng = np.random.default_rng(3)
    state = fc.initial_state(1, 1.0)
    covered = []
    for _ in range(400):
        upper = fc.predict(state, 1).upper_rps[0, 0]
        sample = float(rng.poisson(200.0))
        if state.samples > 30:
            covered.append(sample <= upper)
        state = fc.observe(state, np.array([sample]))
    assert np.mean(covered) > 0.9


def test_state_goes_in_and_comes_out_unchanged() -> None:
    state = fc.initial_state(2, 15.0)
    after = fc.observe(state, np.array([1.0, 2.0]))
    assert state.samples == 0
    assert after.samples == 1
    assert not state.history_rps.any()
    with pytest.raises(ValueError, match="shape"):
        fc.observe(after, np.array([1.0, 2.0, 3.0]))


@pytest.mark.skipif(not NASA_TRACE.exists(), reason=f"the NASA 1995 trace is not at {NASA_TRACE}")
def test_beats_last_value_on_the_nasa_trace_five_minutes_ahead() -> None:
    counts = np.loadtxt(NASA_TRACE)
    per_minute_rps = counts[: counts.size // 60 * 60].reshape(-1, 60).mean(axis=1)
    days = per_minute_rps[: 4 * 1440]  # two days to learn the daily season, two to score
    horizon = 5
    state = fc.initial_state(1, 60.0)
    model_error, naive_error = [], []
    for t in range(days.size - horizon):
        state = fc.observe(state, days[t: t + 1])
        if t >= 2 * 1440 and t % 5 == 0:
            actual = days[t + 1: t + 1 + horizon]
            model_error.append(np.abs(fc.predict(state, horizon).mean_rps[0] - actual).mean())
            naive_error.append(np.abs(days[t] - actual).mean())
    assert state.period_steps[0] > 0, "the daily season is found"
    assert np.mean(model_error) < 0.95 * np.mean(naive_error)
