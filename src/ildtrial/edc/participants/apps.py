from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "ildtrial.edc.participants"
    label = "participants"
    verbose_name = "Participants"
