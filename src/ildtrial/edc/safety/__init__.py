"""Adverse events, SAE reports and their clocks, stopping rules, DSMB reports."""
