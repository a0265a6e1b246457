"""The statistical report and analysis pages."""
