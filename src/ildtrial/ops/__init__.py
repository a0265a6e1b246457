"""Operations: backup and restore of the trial database."""
