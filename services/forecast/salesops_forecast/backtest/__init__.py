"""Replaying history as of past days (rolling origin) and scoring every method on it."""
