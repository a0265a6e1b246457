"""Reports have no tables of their own."""
