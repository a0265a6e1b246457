"""Electronic signatures (21 CFR 11.50/11.200): who signed what, when, meaning what."""
