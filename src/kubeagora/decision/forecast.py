"""Arrival-rate forecasts per service: EWMA, damped Holt–Winters and FFT seasonality, combined.

Everything here is a pure function of a per-service history of arrival rates sampled at a fixed step
(a controller samples them from the Observation's counters every interval). A forecaster's state — the
history ring buffer, the fitted level/trend/seasonal components and recent residuals — is the frozen
`ForecasterState`: `observe(state, rates) -> state` and `predict(state, horizon_steps) -> Forecast`.

The parts:

- **EWMA level** (simple exponential smoothing): `ℓ_t = α·y_t + (1 − α)·ℓ_{t−1}`, a flat forecast.
- **Holt–Winters, additive** (Holt 1957, Winters 1960; the damped trend of Gardner & McKenzie 1985), in
  the error-correction form of Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed.),
  §8.2–8.3: level `ℓ`, damped trend `b` (φ < 1 so a burst's ramp is not extrapolated forever) and,
  once a season has been detected, seasonal indices `s` updated with γ.
- **Seasonality detection** as Crane's DSP predictor does it (gocrane/crane `pkg/prediction/dsp`, its
  "DSP Prediction Algorithm" document): clip outliers to the 0.1/99.9 percentiles, remove the linear
  trend, take the FFT periodogram, pick the dominant frequency, and accept its period only when the
  series' autocorrelation at that lag confirms it and the history holds at least two cycles.
- **Combination**: each model's one-step-ahead squared error is tracked with an EWMA and the forecasts
  are mixed with inverse-MSE weights (Bates & Granger 1969, "The combination of forecasts").
- **Upper quantile** for SLO-safe provisioning: mean + k·σ_h, where σ is the spread of the recent
  one-step residuals of the combined forecast (from their 80th absolute percentile) and σ_h grows with
  the horizon as an ETS(A,A,N) prediction interval does (FPP3 §8.7), σ_h² = σ²·(1 + Σ_{j<h} (α + jαβ)²),
  up to a cap.

Shapes: histories are `[service, time]` (oldest first), forecasts `[service, horizon step]`, rates in
requests per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import erfinv

from kubeagora.model import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    ewma_alpha: float = 0.5
    """Smoothing of the EWMA level model (0 < α ≤ 1; higher follows changes faster)."""
    level_alpha: float = 0.5
    """Holt–Winters level smoothing."""
    trend_beta: float = 0.15
    """Holt–Winters trend smoothing (on the level's change, FPP3's β*)."""
    trend_damping_phi: float = 0.98
    """Damping of the trend per step (1 = Holt's linear trend; < 1 flattens it out over the horizon)."""
    seasonal_gamma: float = 0.2
    """Holt–Winters seasonal smoothing, once a period has been detected."""
    min_period_steps: int = 4
    """Shorter periods than this are noise, not seasonality."""
    min_cycles: float = 2.0
    """A period is accepted only when the history holds this many cycles of it."""
    min_autocorrelation: float = 0.15
    """The autocorrelation at the candidate lag must reach this (and 3 standard errors of a white-noise
    autocorrelation, 3/√(n − lag)) to confirm the period, as Crane confirms its FFT candidates."""
    redetect_every_steps: int = 60
    """How often the seasonality is re-detected from the history."""
    history_steps: int = 4096
    """Ring buffer length (enough for two days at 1-minute steps: two cycles of a daily season)."""
    error_smoothing: float = 0.1
    """EWMA weight of the newest squared error in the per-model MSE that sets the combination weights."""
    residual_window_steps: int = 20
    """Recent one-step residuals kept for the upper quantile."""
    upper_k: float = 2.0
    """The upper quantile is mean + k·σ_h (k = 2 ≈ the 97.7th percentile of a normal error)."""
    sigma_quantile: float = 0.8
    """σ is read from this quantile of the recent absolute residuals (see `residual_sigma_rps`)."""
    max_sigma_growth: float = 2.0
    """Cap on σ_h / σ: the ETS(A,A,N) interval assumes the level wanders like a random walk; request rates
    revert to their mean, so the far end of a minutes-long horizon is not that much less certain."""

    def __post_init__(self) -> None:
        for name in ("ewma_alpha", "level_alpha", "trend_beta", "trend_damping_phi", "seasonal_gamma",
                     "error_smoothing"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"ForecastSettings.{name} must be in (0, 1], got {value}")
        if self.history_steps < 2 * self.min_period_steps:
            raise ValueError("ForecastSettings.history_steps must hold two of the shortest periods")
        if self.residual_window_steps < 2:
            raise ValueError("ForecastSettings.residual_window_steps must be at least 2")


# ---------------------------------------------------------------------------------------------------- batch parts


def _as_history(history_rps: FloatArray) -> FloatArray:
    history = np.asarray(history_rps, dtype=np.float64)
    if history.ndim == 1:
        history = history[None, :]
    if history.ndim != 2:
        raise ValueError(f"history must be [service, time] (or one series), got shape {history.shape}")
    return history


def ewma_level(history_rps: FloatArray, alpha: float) -> FloatArray:
    """Per service: the exponentially weighted moving average of the history (its last value)."""
    history = _as_history(history_rps)
    if history.shape[1] == 0:
        return np.zeros(history.shape[0])
    level = history[:, 0].copy()
    for t in range(1, history.shape[1]):
        level = alpha * history[:, t] + (1.0 - alpha) * level
    return level


def dominant_period_steps(history_rps: FloatArray, settings: ForecastSettings | None = None) -> IntArray:
    """Per service: the dominant period of the history in steps, or 0 where there is no clear season.

    Crane's DSP recipe: clip outliers to [P0.1, P99.9], detrend, FFT periodogram, take the strongest
    frequency whose period fits `min_cycles` times into the history, and confirm it with the
    autocorrelation at that lag.
    """
    cfg = settings or ForecastSettings()
    history = _as_history(history_rps)
    n_services, n = history.shape
    periods = np.zeros(n_services, dtype=np.int64)
    if n < 2 * cfg.min_period_steps:
        return periods
    lo, hi = np.percentile(history, [0.1, 99.9], axis=1)
    clipped = np.clip(history, lo[:, None], hi[:, None])
    t = np.arange(n, dtype=np.float64)
    t_centered = t - t.mean()
    slope = (clipped - clipped.mean(axis=1, keepdims=True)) @ t_centered / float(t_centered @ t_centered)
    detrended = clipped - clipped.mean(axis=1, keepdims=True) - slope[:, None] * t_centered[None, :]
    power = np.abs(np.fft.rfft(detrended, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n)  # cycles per step
    with np.errstate(divide="ignore"):
        period_of_bin = np.where(freqs > 0, 1.0 / np.where(freqs > 0, freqs, 1.0), np.inf)
    eligible = (period_of_bin >= cfg.min_period_steps) & (period_of_bin * cfg.min_cycles <= n)
    if not eligible.any():
        return periods
    variance = (detrended * detrended).sum(axis=1)
    for s in range(n_services):
        if variance[s] <= 1e-12:
            continue
        k = int(np.argmax(np.where(eligible, power[s], -1.0)))
        # the bin's period is coarse for long periods: refine it by the autocorrelation peak nearby
        guess = period_of_bin[k]
        lags = np.arange(max(cfg.min_period_steps, int(np.floor(guess * 0.8))),
                         min(int(np.ceil(guess * 1.2)), int(n / cfg.min_cycles)) + 1)
        if lags.size == 0:
            continue
        # unbiased: each lag's sum over its n − lag overlapping pairs, against the variance per sample
        acf = np.array([detrended[s, lag:] @ detrended[s, :-lag] / (n - lag) for lag in lags]) / (variance[s] / n)
        best = int(np.argmax(acf))
        if acf[best] >= max(cfg.min_autocorrelation, 3.0 / np.sqrt(n - lags[best])):
            periods[s] = int(lags[best])
    return periods


# ---------------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class ForecasterState:
    """What a forecaster carries from one sample to the next. Arrays are never written after construction."""

    step_s: float
    settings: ForecastSettings
    history_rps: FloatArray
    """[service, history_steps] ring buffer of observed rates; `samples` counts how many were written."""
    samples: int
    ewma_rps: FloatArray
    level_rps: FloatArray
    trend_rps: FloatArray
    """Per-step change of the Holt–Winters level."""
    seasonal_rps: FloatArray
    """[service, max period] additive seasonal indices (zeros where there is no season)."""
    period_steps: IntArray
    """Per service: the detected period (0 = none)."""
    model_mse: FloatArray
    """[model, service] EWMA of squared one-step errors: row 0 EWMA, row 1 Holt–Winters."""
    residuals_rps: FloatArray
    """[service, residual_window_steps] the combined forecast's latest one-step errors, newest last."""
    residual_count: int
    last_one_step_rps: FloatArray | None = field(default=None)
    """The combined one-step forecast made after the previous sample (to score it against the next)."""

    @property
    def n_services(self) -> int:
        return int(self.history_rps.shape[0])

    def ordered_history(self) -> FloatArray:
        """The kept history, oldest first: [service, min(samples, history_steps)]."""
        size = self.history_rps.shape[1]
        if self.samples <= size:
            return self.history_rps[:, : self.samples]
        head = self.samples % size
        return np.concatenate([self.history_rps[:, head:], self.history_rps[:, :head]], axis=1)


def initial_state(n_services: int, step_s: float, settings: ForecastSettings | None = None) -> ForecasterState:
    cfg = settings or ForecastSettings()
    if n_services < 0 or step_s <= 0:
        raise ValueError(f"need n_services ≥ 0 and step_s > 0, got {n_services}, {step_s}")
    zeros = np.zeros(n_services)
    return ForecasterState(
        step_s=float(step_s), settings=cfg, history_rps=np.zeros((n_services, cfg.history_steps)), samples=0,
        ewma_rps=zeros, level_rps=zeros, trend_rps=zeros,
        seasonal_rps=np.zeros((n_services, cfg.history_steps // 2)), period_steps=np.zeros(n_services, np.int64),
        model_mse=np.ones((2, n_services)), residuals_rps=np.zeros((n_services, cfg.residual_window_steps)),
        residual_count=0,
    )


def _season_at(state: ForecasterState, steps_ahead: IntArray | int) -> FloatArray:
    """[service, len(steps_ahead)] seasonal index for samples `steps_ahead` after the newest one."""
    ahead = np.atleast_1d(np.asarray(steps_ahead, dtype=np.int64))
    if not state.period_steps.any():
        return np.zeros((state.n_services, ahead.shape[0]))
    period = np.maximum(state.period_steps, 1)
    phase = (state.samples - 1 + ahead[None, :]) % period[:, None]
    values = np.take_along_axis(state.seasonal_rps, phase, axis=1)
    return np.where(state.period_steps[:, None] > 0, values, 0.0)


def _seasonal_profile(history: FloatArray, period: int, samples: int, width: int) -> FloatArray:
    """Classical decomposition: mean of the (linearly detrended) history at each phase, centred on zero,
    laid out by absolute phase (sample index mod period)."""
    n = history.shape[0]
    t = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(t, history, 1)
    detrended = history - (slope * t + intercept)
    phase = (samples - n + np.arange(n)) % period
    sums = np.bincount(phase, detrended, minlength=period)
    counts = np.maximum(np.bincount(phase, minlength=period), 1)
    profile = sums / counts
    out = np.zeros(width)
    out[:period] = profile - profile.mean()
    return out


def observe(state: ForecasterState, rates_rps: FloatArray) -> ForecasterState:
    """Add one sample (per service, the mean arrival rate over the last step) and update every model."""
    cfg = state.settings
    y = np.asarray(rates_rps, dtype=np.float64)
    if y.shape != (state.n_services,):
        raise ValueError(f"rates_rps must have shape ({state.n_services},), got {y.shape}")
    y = np.maximum(np.nan_to_num(y, nan=0.0), 0.0)
    size = cfg.history_steps
    history = state.history_rps.copy()
    history[:, state.samples % size] = y
    samples = state.samples + 1

    if state.samples == 0:
        return replace(state, history_rps=history, samples=samples, ewma_rps=y.copy(), level_rps=y.copy(),
                       last_one_step_rps=y.copy())

    # score last step's forecasts against this sample
    season_now = _season_at(state, 1)[:, 0]
    hw_one_step = state.level_rps + cfg.trend_damping_phi * state.trend_rps + season_now
    errors = np.stack([y - state.ewma_rps, y - hw_one_step])
    mse = (1.0 - cfg.error_smoothing) * state.model_mse + cfg.error_smoothing * errors * errors
    residuals, residual_count = state.residuals_rps, state.residual_count
    if state.last_one_step_rps is not None:
        residuals = np.concatenate([residuals[:, 1:], (y - state.last_one_step_rps)[:, None]], axis=1)
        residual_count = min(residual_count + 1, cfg.residual_window_steps)

    # EWMA
    ewma = cfg.ewma_alpha * y + (1.0 - cfg.ewma_alpha) * state.ewma_rps
    # Holt–Winters, additive, damped trend (FPP3 §8.3 error-correction form)
    hw_error = y - hw_one_step
    level = state.level_rps + cfg.trend_damping_phi * state.trend_rps + cfg.level_alpha * hw_error
    trend = cfg.trend_damping_phi * state.trend_rps + cfg.level_alpha * cfg.trend_beta * hw_error
    seasonal = state.seasonal_rps
    period = state.period_steps
    if (period > 0).any():
        seasonal = seasonal.copy()
        phase = (samples - 1) % np.maximum(period, 1)
        rows = np.flatnonzero(period > 0)
        seasonal[rows, phase[rows]] += cfg.seasonal_gamma * (1.0 - cfg.level_alpha) * hw_error[rows]

    updated = replace(state, history_rps=history, samples=samples, ewma_rps=ewma, level_rps=level,
                      trend_rps=trend, seasonal_rps=seasonal, model_mse=mse, residuals_rps=residuals,
                      residual_count=residual_count)
    if samples % cfg.redetect_every_steps == 0:
        updated = _redetect_seasonality(updated)
    return replace(updated, last_one_step_rps=_combine(updated, 1)[:, 0])


def _redetect_seasonality(state: ForecasterState) -> ForecasterState:
    """Find each service's period again; where it changed, restart its seasonal indices from the history."""
    history = state.ordered_history()
    periods = dominant_period_steps(history, state.settings)
    changed = periods != state.period_steps
    if not changed.any():
        return state
    seasonal = state.seasonal_rps.copy()
    level = state.level_rps.copy()
    for s in np.flatnonzero(changed):
        p = int(periods[s])
        seasonal[s] = 0.0 if p == 0 else _seasonal_profile(history[s], p, state.samples, seasonal.shape[1])
        # the level had been following the season: take the season out of it
        old = float(_season_at(state, 0)[s, 0])
        new = float(seasonal[s, (state.samples - 1) % p]) if p else 0.0
        level[s] = level[s] + old - new
    return replace(state, period_steps=periods, seasonal_rps=seasonal, level_rps=level)


# ---------------------------------------------------------------------------------------------------- forecasts


@dataclass(frozen=True, slots=True)
class Forecast:
    mean_rps: FloatArray
    """[service, horizon step]: expected arrivals per second in step h+1 after the newest sample."""
    upper_rps: FloatArray
    """[service, horizon step]: mean + k·σ_h (what SLO-safe provisioning plans for)."""
    sigma_rps: FloatArray
    """[service]: spread of the recent one-step errors of the combined forecast."""
    period_steps: IntArray
    weights: FloatArray
    """[model, service]: the combination weights used (EWMA, Holt–Winters)."""


def _weights(state: ForecasterState) -> FloatArray:
    inverse = 1.0 / np.maximum(state.model_mse, 1e-12)
    weights: FloatArray = inverse / inverse.sum(axis=0, keepdims=True)
    return weights


def _holt_winters_path(state: ForecasterState, horizon_steps: int) -> FloatArray:
    phi = state.settings.trend_damping_phi
    h = np.arange(1, horizon_steps + 1)
    damped_sum = np.cumsum(phi ** h)  # φ + φ² + … + φ^h
    path = state.level_rps[:, None] + damped_sum[None, :] * state.trend_rps[:, None] + _season_at(state, h)
    return np.asarray(path, dtype=np.float64)


def _combine(state: ForecasterState, horizon_steps: int) -> FloatArray:
    w = _weights(state)
    ewma_path = np.repeat(state.ewma_rps[:, None], horizon_steps, axis=1)
    combined = w[0][:, None] * ewma_path + w[1][:, None] * _holt_winters_path(state, horizon_steps)
    return np.asarray(np.maximum(combined, 0.0), dtype=np.float64)


def residual_sigma_rps(state: ForecasterState) -> FloatArray:
    """Per service: the spread σ of the recent one-step residuals, read from their upper absolute quantile.

    σ = q/z where q is the `sigma_quantile` of |residual| and z the matching normal quantile of |N(0, 1)|
    (q80 / 1.2816). Neither the RMS nor a median spread: a load that jumps every few samples
    (heavy-tailed per-minute modulation) has mostly small residuals and some large ones, and it is those
    that provisioning must cover, which a median ignores; one burst's two or three huge residuals, on the
    other hand, should not inflate σ for the whole window, which they do to an RMS."""
    if state.residual_count == 0:
        return np.zeros(state.n_services)
    recent = np.abs(state.residuals_rps[:, -state.residual_count:])
    q = state.settings.sigma_quantile
    z = float(np.sqrt(2.0) * erfinv(q))
    sigma: FloatArray = np.quantile(recent, q, axis=1) / z
    return sigma


def predict(state: ForecasterState, horizon_steps: int) -> Forecast:
    """Mean and upper forecasts for the next `horizon_steps` steps, per service."""
    if horizon_steps < 1:
        raise ValueError(f"horizon_steps must be ≥ 1, got {horizon_steps}")
    cfg = state.settings
    if state.samples == 0:
        zeros = np.zeros((state.n_services, horizon_steps))
        return Forecast(zeros, zeros, np.zeros(state.n_services), state.period_steps, _weights(state))
    mean = _combine(state, horizon_steps)
    sigma = residual_sigma_rps(state)
    j = np.arange(horizon_steps)
    growth = np.sqrt(1.0 + np.cumsum(np.where(j > 0, (cfg.level_alpha + j * cfg.level_alpha * cfg.trend_beta) ** 2,
                                              0.0)))
    upper = mean + cfg.upper_k * sigma[:, None] * np.minimum(growth, cfg.max_sigma_growth)[None, :]
    return Forecast(mean, upper, sigma, state.period_steps, _weights(state))


def fit(history_rps: FloatArray, step_s: float, settings: ForecastSettings | None = None) -> ForecasterState:
    """Run the forecaster over a whole history ([service, time] or one series), oldest sample first."""
    history = _as_history(history_rps)
    state = initial_state(history.shape[0], step_s, settings)
    for t in range(history.shape[1]):
        state = observe(state, history[:, t])
    return state


def forecast(history_rps: FloatArray, horizon_steps: int, step_s: float,
             settings: ForecastSettings | None = None) -> FloatArray:
    """[service, horizon]: the combined mean forecast after the history (rates in req/s)."""
    return predict(fit(history_rps, step_s, settings), horizon_steps).mean_rps


def forecast_upper(history_rps: FloatArray, horizon_steps: int, step_s: float,
                   settings: ForecastSettings | None = None) -> FloatArray:
    """[service, horizon]: the upper forecast (mean + k·σ_h) after the history."""
    return predict(fit(history_rps, step_s, settings), horizon_steps).upper_rps
