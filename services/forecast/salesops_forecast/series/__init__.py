"""Time-series forecasts of bookings, vectorised across many series (one row each)."""
