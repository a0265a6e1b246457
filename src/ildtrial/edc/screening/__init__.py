"""Eligibility assessments: the engine's verdict on stored screening data, confirmed by an investigator's signature."""
