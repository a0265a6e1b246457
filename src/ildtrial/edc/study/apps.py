from django.apps import AppConfig


class StudyConfig(AppConfig):
    name = "ildtrial.edc.study"
    label = "study"
    verbose_name = "Study"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from ildtrial.edc.study import checks  # noqa: F401  (registers the system checks)
        from ildtrial.edc.study.protocol import current_protocol, register_protocol

        current_protocol()  # an invalid protocol file stops the start here, with every problem listed
        post_migrate.connect(register_protocol, sender=self)
