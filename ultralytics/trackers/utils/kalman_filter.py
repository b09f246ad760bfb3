"""Constant-velocity Kalman filters over box states, as used by SORT-style trackers.

The state holds a box measurement z (4,) and its velocity: x = [z, dz/dt] (8,). Each frame moves
the box by its velocity (dt = 1 frame). The noise is proportional to the box size so that a large,
near object may move more pixels per frame than a small, far one.

Two parameterisations of z:
- `KalmanFilterXYAH`: centre x, centre y, aspect ratio w/h, height (ByteTrack).
- `KalmanFilterXYWH`: centre x, centre y, width, height (BoT-SORT, whose paper argues that
  estimating w directly fits the box width better than estimating the aspect ratio).

Noise weights: sigma_p = 1/20 of the box side for positions, sigma_v = 1/160 for velocities,
the values of the BoT-SORT paper (Eq. 1-2).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

# 0.95 quantile of the chi-square distribution with N degrees of freedom, for Mahalanobis gating.
chi2inv95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877, 5: 11.070, 6: 12.592, 7: 14.067, 8: 15.507, 9: 16.919}

_NDIM = 4  # measured quantities per box

# The paper's noise weights: std of positions and of velocities as a fraction of the box side.
SIGMA_P = 1.0 / 20
SIGMA_V = 1.0 / 160
# Standard deviation of the aspect ratio w/h, which does not grow with the box.
_ASPECT_STD = {"position": 1e-2, "velocity": 1e-5, "measurement": 1e-1}


class KalmanFilterXYAH:
    """Kalman filter with measurement (x, y, a, h): centre, aspect ratio w/h and height.

    The aspect ratio is nearly constant for one object, so its noise is a small absolute value
    rather than a fraction of the box size.
    """

    def __init__(self):
        self._motion_mat = np.eye(2 * _NDIM)  # F: x_{t+1} = F x_t
        self._motion_mat[:_NDIM, _NDIM:] = np.eye(_NDIM)  # position += velocity * (dt = 1)
        self._update_mat = np.eye(_NDIM, 2 * _NDIM)  # H: z = H x picks the position half

    # ---- noise levels: (..., 4) standard deviations for states or measurements of shape (..., >=4)
    def _size_scale(self, z: np.ndarray) -> np.ndarray:
        """(..., 4) scale per component: the height for x, y, h; 0 for the aspect (a fixed level instead)."""
        h = z[..., 3]
        return np.stack([h, h, np.zeros_like(h), h], axis=-1)

    def _floor(self, kind: str) -> np.ndarray:
        """(4,) size-independent part of the std: the aspect ratio's own noise level."""
        return np.array([0.0, 0.0, _ASPECT_STD[kind], 0.0])

    def _std(self, z: np.ndarray, kind: str, weight: float) -> np.ndarray:
        return weight * self._size_scale(z) + self._floor(kind)

    # ---- the filter
    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track from one measurement (4,): mean (8,) with zero velocity, covariance (8, 8).

        The velocity is unknown, so its initial uncertainty is ten times the per-frame process noise;
        the position's is twice.
        """
        mean = np.r_[measurement, np.zeros(_NDIM)]
        std = np.r_[
            2 * self._std(measurement, "position", SIGMA_P),
            10 * self._std(measurement, "velocity", SIGMA_V),
        ]
        return mean, np.diag(np.square(std))

    def _process_noise(self, mean: np.ndarray) -> np.ndarray:
        """(..., 8, 8) diagonal process noise Q for states (..., 8)."""
        std = np.concatenate(
            [
                self._std(mean, "position", SIGMA_P),
                self._std(mean, "velocity", SIGMA_V),
            ],
            axis=-1,
        )
        return np.square(std)[..., None] * np.eye(2 * _NDIM)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for one state: (8,), (8, 8) -> (8,), (8, 8)."""
        means, covariances = self.multi_predict(mean[None], covariance[None])
        return means[0], covariances[0]

    def multi_predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for n states at once: (n, 8), (n, 8, 8) -> (n, 8), (n, 8, 8)."""
        motion = self._motion_mat
        new_mean = mean @ motion.T
        new_cov = motion @ covariance @ motion.T + self._process_noise(mean)
        return new_mean, new_cov

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The state's distribution in measurement space: (4,) mean and (4, 4) covariance H P H^T + R."""
        noise = np.diag(np.square(self._std(mean, "measurement", SIGMA_P)))
        projected_cov = self._update_mat @ covariance @ self._update_mat.T
        return self._update_mat @ mean, projected_cov + noise

    def update(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        measurement: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct a predicted state (8,), (8, 8) with a measurement (4,); returns the posterior."""
        projected_mean, projected_cov = self.project(mean, covariance)
        # Kalman gain K = P H^T S^-1, solved through the Cholesky factor of S rather than inverting it.
        factor = scipy.linalg.cho_factor(projected_cov, lower=True, check_finite=False)
        gain = scipy.linalg.cho_solve(factor, (covariance @ self._update_mat.T).T, check_finite=False).T  # (8, 4)
        innovation = measurement - projected_mean
        new_mean = mean + innovation @ gain.T
        new_cov = covariance - gain @ projected_cov @ gain.T
        return new_mean, new_cov

    def gating_distance(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        measurements: np.ndarray,
        only_position: bool = False,
        metric: str = "maha",
    ) -> np.ndarray:
        """(n,) distance of each measurement (n, 4) to the state: squared Mahalanobis ('maha') or Euclidean
        ('gaussian'); only_position uses the centre alone. Compare with chi2inv95 to gate."""
        projected_mean, projected_cov = self.project(mean, covariance)
        keep = 2 if only_position else _NDIM
        offsets = measurements[:, :keep] - projected_mean[:keep]  # (n, keep)
        if metric == "gaussian":
            return np.sum(offsets * offsets, axis=1)
        if metric != "maha":
            raise ValueError(f"gating_distance(metric={metric!r}) is not supported; use 'maha' or 'gaussian'")
        lower = np.linalg.cholesky(projected_cov[:keep, :keep])
        whitened = scipy.linalg.solve_triangular(lower, offsets.T, lower=True, check_finite=False)
        return np.sum(whitened * whitened, axis=0)


class KalmanFilterXYWH(KalmanFilterXYAH):
    """Kalman filter with measurement (x, y, w, h): every component's noise scales with the box size."""

    def _size_scale(self, z: np.ndarray) -> np.ndarray:
        w, h = z[..., 2], z[..., 3]
        return np.stack([w, h, w, h], axis=-1)

    def _floor(self, kind: str) -> np.ndarray:
        return np.zeros(_NDIM)
