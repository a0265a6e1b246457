from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "ildtrial.edc.visits"
    label = "visits"
    verbose_name = "Visits"
