from django.apps import AppConfig


class SafetyConfig(AppConfig):
    name = "ildtrial.edc.safety"
    label = "safety"
    verbose_name = "Safety"

    def ready(self) -> None:
        from ildtrial.edc.safety import receivers  # noqa: F401  (recomputes infusion flags when INF data change)
