"""Building blocks the trackers share: the Kalman filters, association costs and camera-motion estimation."""
