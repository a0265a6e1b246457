"""ildtrial: the platform that runs trial NCT02594839 (allogeneic MSC vs placebo in rapidly progressive ILD)."""

__version__ = "0.1.0"
