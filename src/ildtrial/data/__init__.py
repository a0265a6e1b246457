"""Reference data shipped with the platform (the curated CTCAE v5.0 term list)."""
