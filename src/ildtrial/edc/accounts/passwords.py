"""Password strength beyond Django's validators: mixed character classes."""

from __future__ import annotations

import string
from typing import Any

from django.core.exceptions import ValidationError


class CharacterClassValidator:
    """At least three of: lower case, upper case, digits, other characters."""

    def __init__(self, min_classes: int = 3):
        self.min_classes = min_classes

    def validate(self, password: str, user: Any = None) -> None:
        classes = [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(c in string.punctuation or c.isspace() or not c.isalnum() for c in password),
        ]
        if sum(classes) < self.min_classes:
            raise ValidationError(
                f"password: must mix at least {self.min_classes} of lower case, upper case, digits and symbols",
                code="password_too_simple",
            )

    def get_help_text(self) -> str:
        return f"Your password must mix at least {self.min_classes} of lower case, upper case, digits and symbols."
