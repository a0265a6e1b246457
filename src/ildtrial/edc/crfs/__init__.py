"""Case report form data: one row per form instance, values as JSON defined by the protocol file."""
