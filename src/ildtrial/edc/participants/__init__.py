"""Participants from first screening to end of study, their consents and the screening log."""
