from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "ildtrial.edc.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from ildtrial.edc.audit import signals  # noqa: F401  (connects the login/m2m receivers)
