"""The study itself: its sites and the protocol versions in force."""
