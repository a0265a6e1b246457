"""Data queries: questions on a value, raised by an edit check or a person, answered and closed with their thread."""
