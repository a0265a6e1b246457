"""Visits as they happen, against the plan the schedule engine derives from the protocol."""
